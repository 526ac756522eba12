"""Secret redaction for anything that leaves the process as text (SPEC §9.5, DECISIONS "Security").

* :func:`sanitize_url` keeps scheme, host, path and harmless parameters and replaces the value of every
  sensitive query (or fragment) parameter, and a userinfo password, with ``[REDACTED]``.
  Sensitive = SPEC §9.5's list **plus** ClaimX's ``sign`` (DECISIONS: presigned signatures are secrets;
  SPEC's list left it out) and a few OAuth names.
* :func:`sanitize_error` redacts ``name=value`` secrets, ``Bearer``/``Basic`` credentials and Azure
  connection-string keys anywhere in free text, sanitises every embedded URL, and truncates to 500.

Both are total: they never raise, whatever the input.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

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


def sanitize_url(url: str) -> str:
    """``url`` with sensitive parameter values and any userinfo password replaced by ``[REDACTED]``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_pairs_in_text(url)
    netloc = _redact_userinfo(parts)
    query = _redact_query(parts.query)
    fragment = _redact_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def sanitize_error(text: str) -> str:
    """Free text made safe to log or store: secrets redacted, URLs sanitised, at most 500 chars."""
    if not text:
        return text if isinstance(text, str) else str(text)
    cleaned = _redact_pairs_in_text(str(text))
    cleaned = _EMBEDDED_URL.sub(lambda m: sanitize_url(m.group(0)), cleaned)
    return truncate(cleaned, 500)


def _redact_pairs_in_text(text: str) -> str:
    for pattern in (_AUTH_HEADER, _BEARER, _BASIC):
        text = pattern.sub(
            lambda m: m.group(0) if m.group(2) == REDACTED else f"{m.group(1)}{REDACTED}", text
        )
    text = _CONN_STRING_KEY.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _NAME_VALUE.sub(
        lambda m: m.group(0) if m.group(3) == REDACTED else f"{m.group(1)}{m.group(2)}{REDACTED}", text
    )


def _redact_query(query: str) -> str:
    if not query:
        return query
    out = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        if sep and unquote_plus(name).strip().lower() in SENSITIVE_PARAMS:
            out.append(f"{name}={REDACTED}")
        else:
            out.append(pair)
    return "&".join(out)


def _redact_userinfo(parts: SplitResult) -> str:
    netloc = parts.netloc
    if "@" not in netloc:
        return netloc
    userinfo, _, hostport = netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    return f"{user}:{REDACTED}@{hostport}" if sep else netloc
