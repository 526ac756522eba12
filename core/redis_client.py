"""The one way the pipeline opens Redis: :func:`redis_client` (state, rate limiter, caches, CLI) and
:func:`broker_ssl_options` (the Celery broker), both from the same settings (issue 7 item 13).

* Password: in the URL, ``redis://:PASSWORD@host:6379/0`` (or ``redis://USER:PASSWORD@…`` for an
  ACL user). redis-py and kombu both read it from there.
* TLS: ``rediss://host:6380/0``. The server certificate and host name are checked against
  ``REDIS_TLS_CA_FILE`` (default: the system's CA store) unless ``REDIS_TLS_CERT_REQS=none``.
  Every client gets the same options: without them Celery's Redis transport refuses a ``rediss``
  URL and redis-py would check against a different CA store than the broker.

Never log the URL: it may carry the password (``core.security.redact`` removes userinfo).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from core.settings import Settings

_CERT_REQS = {"required": ssl.CERT_REQUIRED, "none": ssl.CERT_NONE}


def uses_tls(url: str) -> bool:
    return url.strip().lower().startswith("rediss://")


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py keyword arguments for TLS (empty for a plain ``redis://`` URL)."""
    if not uses_tls(settings.redis_url):
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": settings.redis_tls_cert_reqs}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return options


def redis_client(settings: Settings, **options: Any) -> redis.Redis:
    """A client for ``REDIS_URL`` with the TLS options; ``options`` (timeouts, …) are passed on."""
    return redis.Redis.from_url(settings.redis_url, **{**tls_options(settings), **options})


def broker_ssl_options(settings: Settings) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for a ``rediss://`` broker URL; ``None`` for plain ``redis://``."""
    if not uses_tls(settings.redis_url):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[settings.redis_tls_cert_reqs]}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return options
