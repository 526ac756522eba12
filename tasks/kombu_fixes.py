"""Workers survive a broker restart: one patch at kombu's Redis channel seam (issue 8 item 5).

The failure (kombu 5.7.0, celery 5.7.0, seen when ``redis-server`` is SIGKILLed under load)::

    consumer: Connection to broker lost. Trying to re-establish the connection...
    Restoring 3 unacknowledged message(s)
    Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")

and the worker exits. How it happens, in the installed source:

1. The consumer learns of the loss from one socket (for example the remote-control ``LISTEN``
   connection) while the task channel still has a ``BRPOP`` outstanding on another.
2. ``Consumer.on_connection_error_after_connected`` calls ``connection.collect()``. Closing the task
   channel first drains that ``BRPOP`` (``redis.Channel.close`` → ``_brpop_read``), which raises a
   connection error *before* the channel is marked closed; ``Connection._do_close_self`` swallows
   it, and ``_do_close_transport`` then sets ``transport.client = None``.
3. It then calls ``connection.close()``, which closes that same channel again. The channel now
   restores its unacknowledged messages (``QoS.restore_unacked`` → ``conn_or_acquire``); its pool
   was dropped by the first close, so ``_get_pool`` → ``_connparams`` reads
   ``self.connection.client.hostname`` on the closed transport: ``AttributeError``. That is no
   connection error, so neither ``maybe_close_channel`` nor ``ignore_errors`` nor the consumer's
   reconnect loop catches it, and the worker stops. The same hole is hit by an ack or a requeue
   of a message whose channel was closed (``basic_ack`` → ``QoS.ack`` → ``_connparams``).

The fix, at that one seam: ``Channel._connparams`` remembers the parameters it built while the
channel's transport was alive and, once the transport is gone, builds from them again, so restoring,
acknowledging or requeueing after a reconnect reaches the same Redis (the unacked hash lives
there, not in the channel). A channel that never connected raises a Redis ``ConnectionError``,
which every caller above treats as "broker unreachable" (the consumer reconnects; unacknowledged
messages come back after the visibility timeout). Nothing else in kombu changes.

Remove this module when kombu keeps a closed channel from reading its transport's client (check:
``tests/e2e/test_broker_restart.py`` passes without the import in ``tasks/application.py``).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_REMEMBERED = "_pipeline_connparams"
_PATCHED = "_pipeline_patched"


def _transport_alive(channel: Any) -> bool:
    transport = channel.connection
    return transport is not None and getattr(transport, "client", None) is not None


def install() -> None:
    """Patch ``kombu.transport.redis.Channel._connparams`` once (idempotent)."""
    channel_cls = kombu_redis.Channel
    original = channel_cls._connparams
    if getattr(original, _PATCHED, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if _transport_alive(self):
            params = original(self, asynchronous=asynchronous)
            self.__dict__.setdefault(_REMEMBERED, {})[bool(asynchronous)] = dict(params)
            return params
        remembered = self.__dict__.get(_REMEMBERED) or {}
        params = remembered.get(bool(asynchronous)) or next(iter(remembered.values()), None)
        if params is None:
            raise redis.exceptions.ConnectionError("broker channel closed before it connected")
        return dict(params)

    setattr(_connparams, _PATCHED, True)
    channel_cls._connparams = _connparams  # type: ignore[method-assign]  # the patch, on purpose


install()
