"""URL validation against SSRF: SPEC §9.1 / §11 cases and hostile inputs, DECISIONS rules."""

from __future__ import annotations

import socket

import pytest

from core.errors import ErrorCategory, PermanentError, TransientError
from core.security.urls import UrlPolicy, UrlRejected, fetch_url_for, is_private_host, validate_url
from core.settings import load_settings

SAMPLE_HOSTS = ("xn-exportreceiver.s3.example.com", "claimx-media.s3.example.com", "files.example.com")
POLICY = UrlPolicy(allowed_hosts=SAMPLE_HOSTS + ("*.cdn.example.org",), resolve_dns=False)


def _reason(url: str, policy: UrlPolicy = POLICY) -> str:
    with pytest.raises(UrlRejected) as info:
        validate_url(url, policy)
    assert str(info.value) == f"URL validation failed: {info.value.reason}"
    return info.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://files.example.com/a/b.pdf",
        "https://files.example.com/a/b.pdf?x=1&y=2",
        "https://files.example.com/a/b.pdf#frag",
        "https://files.example.com:443/a/b.pdf",
        "https://user:secret@files.example.com/a/b.pdf",
        "https://files.example.com/a/water%20damage%20closeup.png",
        "https://FILES.Example.COM/a/b.pdf",
        "HTTPS://files.example.com/a/b.pdf",
        "https://files.example.com./a/b.pdf",
        "  https://files.example.com/a/b.pdf  ",
    ],
)
def test_validate_url__valid_https_forms_return_lower_case_host(url: str) -> None:
    assert validate_url(url, POLICY) == "files.example.com"


@pytest.mark.parametrize(
    "url, reason",
    [
        ("", "Empty URL"),
        ("   ", "Empty URL"),
        ("https:///path/file.pdf", "No hostname in URL"),
        ("https://", "No hostname in URL"),
        ("http:", "No hostname in URL"),
        ("ftp:", "No hostname in URL"),
        ("files.example.com/a.pdf", "No hostname in URL"),
        ("http://files.example.com/a.pdf", "Must be HTTPS, got http"),
        ("HTTP://files.example.com/a.pdf", "Must be HTTPS, got http"),
        ("ftp://files.example.com/a.pdf", "Invalid scheme: ftp"),
        ("file://files.example.com/etc/passwd", "Invalid scheme: file"),
        ("gopher://files.example.com/x", "Invalid scheme: gopher"),
        ("//files.example.com/a.pdf", "Invalid scheme: (none)"),
    ],
)
def test_validate_url__malformed_or_non_https_is_rejected(url: str, reason: str) -> None:
    assert _reason(url) == reason


@pytest.mark.parametrize(
    "url",
    [
        "https://files.example.com:abc/a.pdf",
        "https://files.example.com:99999/a.pdf",
        "https://[::1/a.pdf",
        "https://files.example.com/a\nb.pdf",
        "https://files.example.com/a\x00.pdf",
    ],
)
def test_validate_url__unparsable_is_invalid_format(url: str) -> None:
    assert _reason(url).startswith("Invalid URL format: ")


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://untrusted.example.net/exports/A-7100457/invoice.pdf", "untrusted.example.net"),
        ("https://sub.files.example.com/a.pdf", "sub.files.example.com"),  # sub-domain of an exact entry
        ("https://example.com/a.pdf", "example.com"),
        ("https://files.example.com.evil.net/a.pdf", "files.example.com.evil.net"),
        ("https://cdn.example.org/a.pdf", "cdn.example.org"),  # *.suffix matches sub-domains only
        ("https://xcdn.example.org/a.pdf", "xcdn.example.org"),
        ("https://files.example.com@evil.example.net/a.pdf", "evil.example.net"),  # userinfo trick
        ("https://evil.example.net#@files.example.com/a.pdf", "evil.example.net"),
        ("https://8.8.8.8/a.pdf", "8.8.8.8"),  # a public IP not on the list
    ],
)
def test_validate_url__host_not_on_allow_list_is_rejected(url: str, host: str) -> None:
    assert _reason(url) == f"Domain not in allowlist: {host}"


@pytest.mark.parametrize("url", ["https://a.cdn.example.org/x.pdf", "https://a.b.CDN.example.org:443/x.pdf"])
def test_validate_url__wildcard_entry_accepts_sub_domains(url: str) -> None:
    assert validate_url(url, POLICY).endswith(".cdn.example.org")


def test_validate_url__wildcard_entry_never_matches_an_ip() -> None:
    policy = UrlPolicy(allowed_hosts=("*.0.0.1", "*.8.8"), resolve_dns=False)
    assert _reason("https://8.8.8.8/a.pdf", policy) == "Domain not in allowlist: 8.8.8.8"


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://127.0.0.1/a.pdf", "127.0.0.1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://10.1.2.3/a.pdf", "10.1.2.3"),
        ("https://172.16.5.4/a.pdf", "172.16.5.4"),
        ("https://192.168.0.10/a.pdf", "192.168.0.10"),
        ("https://100.64.0.1/a.pdf", "100.64.0.1"),
        ("https://0.0.0.0/a.pdf", "0.0.0.0"),
        ("https://[::1]/a.pdf", "::1"),
        ("https://[::]/a.pdf", "::"),
        ("https://[fe80::1]/a.pdf", "fe80::1"),
        ("https://[fc00::1]/a.pdf", "fc00::1"),
        ("https://[fd12:3456::1]/a.pdf", "fd12:3456::1"),
        ("https://[::ffff:127.0.0.1]/a.pdf", "::ffff:127.0.0.1"),
        ("https://[::ffff:a9fe:a9fe]/a.pdf", "::ffff:a9fe:a9fe"),
        ("https://[64:ff9b::a9fe:a9fe]/a.pdf", "64:ff9b::a9fe:a9fe"),
        ("https://[2002:7f00:1::1]/a.pdf", "2002:7f00:1::1"),
        ("https://2130706433/a.pdf", "2130706433"),
        ("https://0x7f000001/a.pdf", "0x7f000001"),
        ("https://0x7f.1/a.pdf", "0x7f.1"),
        ("https://0177.0.0.1/a.pdf", "0177.0.0.1"),
        ("https://127.1/a.pdf", "127.1"),
        ("https://localhost/a.pdf", "localhost"),
        ("https://LOCALHOST:8080/a.pdf", "localhost"),
        ("https://app.localhost/a.pdf", "app.localhost"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
        ("https://metadata.aws.internal/", "metadata.aws.internal"),
    ],
)
def test_validate_url__private_loopback_and_metadata_hosts_are_rejected(url: str, host: str) -> None:
    assert _reason(url) == f"Private or loopback address: {host}"


def test_validate_url__private_host_rejected_even_when_allow_listed() -> None:
    policy = UrlPolicy(allowed_hosts=("localhost", "127.0.0.1", "::1"), resolve_dns=False)
    for url in ("https://localhost/a.pdf", "https://127.0.0.1/a.pdf", "https://[::1]/a.pdf"):
        assert _reason(url, policy).startswith("Private or loopback address")


def test_validate_url__public_ip_passes_only_when_listed_exactly() -> None:
    policy = UrlPolicy(allowed_hosts=("8.8.8.8",), resolve_dns=False)
    assert validate_url("https://8.8.8.8/a.pdf", policy) == "8.8.8.8"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net\\@files.example.com/a.pdf",  # parsers disagree on the host
        "https://files.example.com\\@evil.example.net/a.pdf",
        "https://fi\u0131les.example.com/a.pdf",  # non-ASCII host
    ],
)
def test_validate_url__host_other_parsers_read_differently_is_rejected(url: str) -> None:
    reason = _reason(url)
    assert reason.startswith(("Invalid URL format:", "Domain not in allowlist:"))


def test_url_rejected__is_permanent() -> None:
    with pytest.raises(PermanentError) as info:
        validate_url("ftp://files.example.com/a.pdf", POLICY)
    assert info.value.category is ErrorCategory.PERMANENT


# --- DNS ---------------------------------------------------------------------------------------------


def test_validate_url__name_resolving_to_loopback_is_rejected() -> None:
    """This machine's own name resolves to a loopback/private address here; allow-listing it is not enough."""
    name = socket.gethostname().lower()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    if any(not is_private_host(a) for a in addresses):
        pytest.skip(f"{name} resolves to a public address here: {addresses}")
    policy = UrlPolicy(allowed_hosts=(name,))
    assert _reason(f"https://{name}/a.pdf", policy) == f"Private or loopback address: {name}"


def test_validate_url__resolve_false_skips_dns() -> None:
    name = socket.gethostname().lower()
    policy = UrlPolicy(allowed_hosts=(name,))
    assert validate_url(f"https://{name}/a.pdf", policy, resolve=False) == name


def test_validate_url__unresolvable_host_is_transient() -> None:
    policy = UrlPolicy(allowed_hosts=("no-such-host.invalid",))
    with pytest.raises(TransientError) as info:
        validate_url("https://no-such-host.invalid/a.pdf", policy)
    assert str(info.value) == "Connection error: cannot resolve no-such-host.invalid"
    assert not isinstance(info.value, UrlRejected)


# --- is_private_host ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.8.9.10",
        "0.0.0.0",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "[::1]",
        "fe80::abcd",
        "fc00::1",
        "metadata.google.internal",
        "metadata.aws.internal",
        "2130706433",
    ],
)
def test_is_private_host__true(host: str) -> None:
    assert is_private_host(host)


@pytest.mark.parametrize(
    "host", ["files.example.com", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "", "10.example.com"]
)
def test_is_private_host__false(host: str) -> None:
    assert not is_private_host(host)


# --- policy and DEV rewrite --------------------------------------------------------------------------


def test_url_policy__from_settings_parses_env_list() -> None:
    s = load_settings(
        allowed_attachment_domains=" Files.Example.com, *.CDN.example.org ,, ",
        dev_simulator_url="http://127.0.0.1:8765/",
        dev_simulator_hosts="files.example.com",
    )
    policy = UrlPolicy.from_settings(s)
    assert policy.allowed_hosts == ("files.example.com", "*.cdn.example.org")
    assert policy.dev_simulator_hosts == ("files.example.com",)
    assert policy.dev_simulator_url == "http://127.0.0.1:8765/"
    assert policy.resolve_dns is True


def test_url_policy__default_settings_have_no_simulator() -> None:
    policy = UrlPolicy.from_settings(load_settings())
    assert policy.dev_simulator_url is None
    assert "localhost" not in policy.allowed_hosts
    assert fetch_url_for("https://claimxperience.com/a.pdf", policy) == "https://claimxperience.com/a.pdf"


DEV = UrlPolicy(
    allowed_hosts=SAMPLE_HOSTS,
    dev_simulator_url="http://127.0.0.1:8765/",
    dev_simulator_hosts=("files.example.com", "xn-exportreceiver.s3.example.com"),
)


def test_fetch_url_for__simulated_host_maps_onto_simulator() -> None:
    url = "https://Files.Example.com:443/get/a%20b.pdf?sign=x&filename=c.pdf#frag"
    assert (
        fetch_url_for(url, DEV)
        == "http://127.0.0.1:8765/files.example.com/get/a%20b.pdf?sign=x&filename=c.pdf"
    )
    assert fetch_url_for("https://files.example.com", DEV) == "http://127.0.0.1:8765/files.example.com/"


def test_fetch_url_for__other_hosts_are_fetched_as_given() -> None:
    url = "https://claimx-media.s3.example.com/a.pdf"
    assert fetch_url_for(url, DEV) == url


def test_validate_url__simulated_host_skips_dns_but_keeps_production_rules() -> None:
    assert validate_url("https://files.example.com/a.pdf", DEV, resolve=True) == "files.example.com"
    assert _reason("http://files.example.com/a.pdf", DEV) == "Must be HTTPS, got http"
    policy = UrlPolicy(
        allowed_hosts=("files.example.com",),
        dev_simulator_url="http://127.0.0.1:1/",
        dev_simulator_hosts=("untrusted.example.net", "localhost"),
    )
    assert (
        _reason("https://untrusted.example.net/a.pdf", policy)
        == "Domain not in allowlist: untrusted.example.net"
    )
    assert _reason("https://localhost/a.pdf", policy) == "Private or loopback address: localhost"


def test_validate_url__simulator_hosts_ignored_without_simulator_url() -> None:
    policy = UrlPolicy(allowed_hosts=("no-such-host.invalid",), dev_simulator_hosts=("no-such-host.invalid",))
    with pytest.raises(TransientError):
        validate_url("https://no-such-host.invalid/a.pdf", policy)
    assert fetch_url_for("https://no-such-host.invalid/a.pdf", policy) == "https://no-such-host.invalid/a.pdf"
