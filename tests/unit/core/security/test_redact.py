"""Secret redaction for URLs and error text (SPEC §9.5, plus ClaimX `sign` per DECISIONS)."""

from __future__ import annotations

import pytest

from core.security.redact import REDACTED, SENSITIVE_PARAMS, sanitize_error, sanitize_url

S3_URL = (
    "https://xn-exportreceiver.s3.example.com/exports/A-1/Proof.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLEKEY%2F20991231%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=20991231T000000Z"
    "&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=0b1c2d3e4f5a6b7c"
)
CLAIMX_URL = (
    "https://files.example.com/service/cxfileservice/get/8d7f?sign=5f4e3d2c1b0a&systemDate=4102444800000"
    "&expires=86400000&filename=Roof_Inspection.pdf&download=true"
)
SAS_URL = (
    "https://acct.blob.core.windows.net/c/b.pdf?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00:00:00Z"
    "&st=2024-01-01&spr=https&sr=b&sig=AbC%2Bdef%3D"
)


def test_sanitize_url__s3_signature_and_credential_redacted_rest_kept() -> None:
    out = sanitize_url(S3_URL)
    assert "0b1c2d3e4f5a6b7c" not in out and "AKIAEXAMPLEKEY" not in out
    assert f"X-Amz-Signature={REDACTED}" in out and f"X-Amz-Credential={REDACTED}" in out
    assert out.startswith("https://xn-exportreceiver.s3.example.com/exports/A-1/Proof.pdf?")
    assert "X-Amz-Date=20991231T000000Z" in out and "X-Amz-Expires=604800" in out


def test_sanitize_url__claimx_sign_is_redacted() -> None:
    """DECISIONS: presigned signatures are secrets, so ClaimX `sign` is redacted although SPEC omits it."""
    out = sanitize_url(CLAIMX_URL)
    assert "5f4e3d2c1b0a" not in out
    assert f"sign={REDACTED}" in out
    assert "systemDate=4102444800000" in out and "filename=Roof_Inspection.pdf" in out


def test_sanitize_url__azure_sas_parameters_redacted() -> None:
    out = sanitize_url(SAS_URL)
    for name in ("sv", "sp", "se", "st", "spr", "sr", "sig"):
        assert f"{name}={REDACTED}" in out
    assert "ss=b" in out and "srt=o" in out
    assert "AbC" not in out


@pytest.mark.parametrize("name", sorted(SENSITIVE_PARAMS))
def test_sanitize_url__every_listed_parameter_is_redacted_in_any_case(name: str) -> None:
    out = sanitize_url(f"https://h.example.com/p?keep=1&{name.upper()}=s3cr3t&other=2")
    assert "s3cr3t" not in out
    assert out == f"https://h.example.com/p?keep=1&{name.upper()}={REDACTED}&other=2"


def test_sanitize_url__path_and_plain_params_unchanged() -> None:
    url = "https://files.example.com/a/water%20damage.png?filename=x.png&download=true"
    assert sanitize_url(url) == url


def test_sanitize_url__userinfo_password_and_fragment_token_redacted() -> None:
    out = sanitize_url("https://bob:hunter2@files.example.com/a.pdf#access_token=abc123&state=1")
    assert "hunter2" not in out and "abc123" not in out
    assert out == f"https://{REDACTED}@files.example.com/a.pdf#access_token={REDACTED}&state=1"


@pytest.mark.parametrize("value", ["", "not a url", "https://[::1/broken?sig=abc"])
def test_sanitize_url__never_raises(value: str) -> None:
    out = sanitize_url(value)
    assert "sig=abc" not in out


@pytest.mark.parametrize(
    "text, secret",
    [
        ("failed: sig=abcdef&x=1", "abcdef"),
        ("sv=2020-01-01 se=2030 st=2024", "2030"),
        ("token=tok123 expired", "tok123"),
        ("key=k3y", "k3y"),
        ("password=pa55 for user", "pa55"),
        ("secret=shh", "shh"),
        ("X-Amz-Signature=0b1c2d", "0b1c2d"),
        ("x-amz-credential=AKIA123", "AKIA123"),
        ("api_key=abc999", "abc999"),
        ("api-key: abc999", "abc999"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("headers={'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
        ("sent Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=AbC/dEf==;EndpointSuffix=core.windows.net",
            "AbC/dEf",
        ),
        ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey=Zz9/Yy=", "Zz9/Yy"),
        (
            "Max retries exceeded with url: /get/8d7f?sign=5f4e3d2c1b0a&systemDate=1 (Caused by X)",
            "5f4e3d2c1b0a",
        ),
    ],
)
def test_sanitize_error__secrets_redacted(text: str, secret: str) -> None:
    out = sanitize_error(text)
    assert secret not in out
    assert REDACTED in out


def test_sanitize_error__embedded_urls_are_sanitised() -> None:
    out = sanitize_error(f"GET {CLAIMX_URL} failed; then {S3_URL}: 403")
    assert "5f4e3d2c1b0a" not in out and "0b1c2d3e4f5a6b7c" not in out and "AKIAEXAMPLEKEY" not in out
    assert "filename=Roof_Inspection.pdf" in out and out.endswith(": 403")


def test_sanitize_error__harmless_text_unchanged() -> None:
    text = "basic validation failed for the key field; token expired; HTTP 404 Not Found"
    assert sanitize_error(text) == text


def test_sanitize_error__truncated_to_500() -> None:
    out = sanitize_error("x" * 1000)
    assert len(out) == 500 and out.endswith("...")
    assert sanitize_error("y" * 500) == "y" * 500


def test_sanitize_error__redacts_before_truncating() -> None:
    out = sanitize_error("a" * 480 + " sig=" + "s" * 100)
    assert "sssss" not in out and len(out) <= 500


def test_sanitize_error__idempotent() -> None:
    once = sanitize_error(f"boom {S3_URL} token=abc")
    assert sanitize_error(once) == once
