"""Secret redaction for anything that leaves the process as text (SPEC §9.5, DECISIONS "Security").

* :func:`sanitize_url` keeps scheme, host, path and harmless parameters and replaces the value of every
  sensitive query (or fragment) parameter, and the whole userinfo (``user:password@`` and a bare
  token, ``https://TOKEN@host/``), with ``[REDACTED]``.
  Sensitive = SPEC §9.5's list **plus** ClaimX's ``sign`` (DECISIONS: presigned signatures are secrets;
  SPEC's list left it out) and a few OAuth names.
* **Nested and encoded secrets.** A query value, fragment or path segment that carries another URL
  or ``name=value`` pairs - as is, or percent-encoded once or several times (``next=https%253A…
  %253Fsig%253D…``) - is decoded (up to four levels) and sanitised in its decoded form; when that
  removed anything, the value is replaced by the sanitised decoded text, percent-encoded once.
* :func:`sanitize_error` redacts ``name=value`` secrets, ``Bearer``/``Basic`` credentials and Azure
  connection-string keys anywhere in free text, sanitises every embedded URL and every
  percent-encoded word that decodes to a secret, and truncates to 500.

Both are total: they never raise, whatever the input.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, quote, unquote_plus, urlsplit, urlunsplit

from core.errors import truncate

REDACTED = "[REDACTED]"

#: Query-parameter names (lower-case) whose values are secrets.
SENSITIVE_PARAMS = frozenset(
    {
        "sig",
        "signature",
        "sv",
        "se",
        "st",
        "sp",
        "sr",
        "spr",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "pwd",
        "auth",
        "authorization",
        # Additions beyond SPEC §9.5:
        "sign",
        "refresh_token",
        "id_token",
        "client_secret",
        "code",
    }
)

_NAME_VALUE = re.compile(
    r"(?i)(?<![\w-])(x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|sign|sv|se|st|"
    r"access_token|refresh_token|client_secret|token|api[_-]key|apikey|key|password|pwd|secret)"
    r"(\s*[=:]\s*)([^&\s'\",;)]*[^&\s'\",;):.])"  # a value does not end in ':' or '.' (prose)
)
_CONN_STRING_KEY = re.compile(
    r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password)(=)([^;\s'\"]+)"
)
_AUTH_HEADER = re.compile(
    r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?(?:(?:basic|bearer|token)\s+)?)([^'\"\s,;}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9\-._~+/]+=*)")
#: ``Basic <token>`` outside a header: only token-looking words (a digit or base64 punctuation).
_BASIC = re.compile(r"(?i)\b(basic\s+)((?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}=*)")
#: A URL in prose: trailing sentence punctuation is not part of it.
_EMBEDDED_URL = re.compile(r"(?i)\b(?:https?|abfss|wss?|ftp)://[^\s'\"<>]*[^\s'\"<>.,:;)]")
#: A word of free text with at least one percent-escape (an encoded URL or pair, perhaps).
_ENCODED_WORD = re.compile(r"[^\s'\"<>]*%[0-9A-Fa-f]{2}[^\s'\"<>]*")
#: Decoding levels tried on a nested value; deeper nesting than this is redacted whole.
_MAX_LEVELS = 4


def sanitize_url(url: str) -> str:
    """``url`` with sensitive parameter values and any userinfo replaced by ``[REDACTED]``."""
    return _sanitize_url(url, 0)


def sanitize_error(text: str) -> str:
    """Free text made safe to log or store: secrets redacted, URLs sanitised, at most 500 chars."""
    if not text:
        return text if isinstance(text, str) else str(text)
    cleaned = _sanitize_text(str(text), 0)
    cleaned = _ENCODED_WORD.sub(lambda m: _nested(m.group(0), 0, reencode=False), cleaned)
    return truncate(cleaned, 500)


def _sanitize_url(url: str, depth: int) -> str:
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_pairs_in_text(url)
    netloc = _redact_userinfo(parts)
    path = _redact_path(parts.path, depth)
    query = _redact_query(parts.query, depth)
    fragment = parts.fragment
    if "=" in fragment or "%" in fragment:
        fragment = _redact_query(fragment, depth)
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def _sanitize_text(text: str, depth: int) -> str:
    """Pairs and credentials redacted, embedded URLs sanitised (no truncation)."""
    cleaned = _redact_pairs_in_text(text)
    return _EMBEDDED_URL.sub(lambda m: _sanitize_url(m.group(0), depth), cleaned)


def _nested(value: str, depth: int, *, reencode: bool = True) -> str:
    """``value`` unchanged unless one of its decoded forms carries a secret (module docstring)."""
    levels = [value]
    while len(levels) <= _MAX_LEVELS:
        decoded = unquote_plus(levels[-1])
        if decoded == levels[-1]:
            break
        levels.append(decoded)
    else:  # still decoding after _MAX_LEVELS: an encoding this deep is not data, it is hiding something
        return REDACTED
    if depth >= _MAX_LEVELS:
        return REDACTED if any(_sanitize_text(x, _MAX_LEVELS) != x for x in levels) else value
    if all(_sanitize_text(level, depth + 1) == level for level in levels):
        return value
    cleaned = _sanitize_text(levels[-1], depth + 1)
    if cleaned == levels[-1]:  # only a partly decoded form showed the secret: keep nothing of it
        return REDACTED
    return quote(cleaned, safe="/[]") if reencode else cleaned


def _redact_pairs_in_text(text: str) -> str:
    for pattern in (_AUTH_HEADER, _BEARER, _BASIC):
        text = pattern.sub(
            lambda m: m.group(0) if m.group(2) == REDACTED else f"{m.group(1)}{REDACTED}", text
        )
    text = _CONN_STRING_KEY.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _NAME_VALUE.sub(
        lambda m: m.group(0) if m.group(3) == REDACTED else f"{m.group(1)}{m.group(2)}{REDACTED}", text
    )


def _redact_query(query: str, depth: int) -> str:
    if not query:
        return query
    out = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and _fully_decoded(name).strip().lower() in SENSITIVE_PARAMS:
            out.append(f"{name}={REDACTED}")
        elif sep and ("%" in value or "=" in value or "://" in value or "+" in value):
            out.append(f"{name}={_nested(value, depth)}")
        elif not sep and "%" in name:
            out.append(_nested(name, depth))
        else:
            out.append(pair)
    return "&".join(out)


def _redact_path(path: str, depth: int) -> str:
    """Path segments that carry an encoded URL or ``name=value`` pair are sanitised (``_nested``)."""
    if "%" not in path and "=" not in path:
        return path
    return "/".join(_nested(seg, depth) if ("%" in seg or "=" in seg) else seg for seg in path.split("/"))


def _fully_decoded(text: str) -> str:
    for _ in range(_MAX_LEVELS):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _redact_userinfo(parts: SplitResult) -> str:
    """Everything before ``@`` goes: a password, and a bare user that is really a token."""
    netloc = parts.netloc
    if "@" not in netloc:
        return netloc
    userinfo, _, hostport = netloc.rpartition("@")
    return netloc if userinfo == REDACTED else f"{REDACTED}@{hostport}"
