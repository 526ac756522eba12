"""Redaction of the gaps found in review (issue 7 item 14): a bare token as userinfo, and secrets in
nested, once- or several-times percent-encoded URLs - as a table and as a seeded generator that
builds thousands of hostile shapes (property: the secret survives in no decoded form of the output)."""

from __future__ import annotations

import random
import string
from urllib.parse import quote, unquote_plus

import pytest

from core.security.redact import REDACTED, sanitize_error, sanitize_url

SECRET = "S3CRxq81Zt0pQ"


def _every_decoding(text: str) -> list[str]:
    out = [text]
    for _ in range(6):
        nxt = unquote_plus(out[-1])
        if nxt == out[-1]:
            break
        out.append(nxt)
    return out


def _leaks(text: str, secret: str) -> bool:
    return any(secret in level for level in _every_decoding(text))


def _enc(text: str, times: int) -> str:
    for _ in range(times):
        text = quote(text, safe="")
    return text


INNER = f"https://b.example.com/x.pdf?sig={SECRET}&keep=1"


@pytest.mark.parametrize(
    "url",
    [
        f"https://{SECRET}@files.example.com/a.pdf",  # a bare token as userinfo
        f"https://{SECRET}:x-oauth-basic@files.example.com/a.pdf",  # token as the user name
        f"https://bob:{SECRET}@files.example.com/a.pdf",
        f"https://a.example.com/r?next={INNER}",  # nested, not encoded at all
        f"https://a.example.com/r?next={_enc(INNER, 1)}",
        f"https://a.example.com/r?next={_enc(INNER, 2)}",  # doubly encoded
        f"https://a.example.com/r?next={_enc(INNER, 3)}",
        f"https://a.example.com/r?u={_enc(f'https://{SECRET}@b.example.com/', 2)}",  # nested userinfo
        f"https://a.example.com/r/{_enc(INNER, 2)}/tail",  # in a path segment
        f"https://a.example.com/r#next={_enc(INNER, 2)}",  # in the fragment
        f"https://a.example.com/r?{_enc('sig', 2)}={SECRET}",  # an encoded parameter name
        f"https://a.example.com/r?next={_enc('https://c.example.com/?next=' + _enc(INNER, 1), 1)}",  # URL in URL in URL
        f"https://a.example.com/r?q={_enc('token=' + SECRET, 2)}",  # an encoded pair, no URL
    ],
)
def test_sanitize_url__nested_and_userinfo_secrets_are_redacted(url: str) -> None:
    out = sanitize_url(url)
    assert not _leaks(out, SECRET), out
    assert out.startswith("https://") and "a.example.com" in out or "files.example.com" in out
    assert not _leaks(sanitize_error(f"GET {url} failed"), SECRET)


def test_sanitize_url__bare_userinfo_token_becomes_redacted_marker() -> None:
    assert sanitize_url(f"https://{SECRET}@h.example.com/a?x=1") == f"https://{REDACTED}@h.example.com/a?x=1"


def test_sanitize_url__nested_harmless_url_is_left_alone() -> None:
    url = f"https://a.example.com/r?next={_enc('https://b.example.com/x y.pdf?filename=a.pdf', 2)}&page=2"
    assert sanitize_url(url) == url


def test_sanitize_error__encoded_url_in_prose_is_redacted() -> None:
    text = f"redirect to {_enc(INNER, 1)} refused; then {_enc(INNER, 2)}"
    out = sanitize_error(text)
    assert not _leaks(out, SECRET) and out.startswith("redirect to ")


# --- a seeded generator: thousands of shapes, one property --------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def _token(rng: random.Random) -> str:
    return "S3CR" + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(8, 24)))


def _wrap(rng: random.Random, secret: str, depth: int) -> str:
    """A URL carrying ``secret`` in one of the shapes above, nested up to ``depth`` times."""
    host = rng.choice(["files.example.com", "a.s3.example.com", "h.example.org"])
    name = rng.choice(["sig", "X-Amz-Signature", "token", "sign", "access_token", "SV", "api_key"])
    shapes = [
        f"https://{host}/p/{rng.randint(1, 9)}.pdf?keep=1&{name}={secret}",
        f"https://{secret}@{host}/p.pdf",
        f"https://u:{secret}@{host}/p.pdf",
        f"https://{host}/p.pdf#{name}={secret}",
    ]
    if depth > 0:
        inner = _wrap(rng, secret, depth - 1)
        times = rng.randint(0, 3)
        encoded = _enc(inner, times) if times else inner
        shapes += [
            f"https://{host}/r?next={encoded}&page={rng.randint(1, 5)}",
            f"https://{host}/r/{_enc(inner, max(times, 1))}/x",
            f"https://{host}/r#u={_enc(inner, max(times, 1))}",
        ]
    return rng.choice(shapes)


def test_sanitize__generated_hostile_urls_never_leak_the_secret() -> None:
    rng = random.Random(20261201)
    for _ in range(3000):
        secret = _token(rng)
        url = _wrap(rng, secret, rng.randint(0, 3))
        out = sanitize_url(url)
        assert not _leaks(out, secret), (url, out)
        text = f"failed: {url} ({rng.choice(['timeout', 'HTTP 403', 'reset'])})"
        cleaned = sanitize_error(text)
        assert not _leaks(cleaned, secret), (text, cleaned)
        assert sanitize_error(cleaned) == cleaned  # idempotent


def test_sanitize__generated_harmless_urls_are_unchanged() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        words = ["water damage", "roof", "A-1", "kitchen (1)", "é"]
        inner = f"https://b.example.com/{quote(rng.choice(words))}.pdf?filename={quote(rng.choice(words))}"
        url = f"https://a.example.com/r/{quote(rng.choice(words))}?next={_enc(inner, rng.randint(0, 2))}&n=1"
        assert sanitize_url(url) == url
