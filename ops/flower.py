"""``python -m ops.flower``: start Flower (the Celery monitor) with authentication where it is exposed.

Flower shows every task's arguments and can revoke tasks and shut workers down, so it must not be
reachable without a password. Contract:

* ``FLOWER_BASIC_AUTH`` (``user:password[,user2:password2]``) turns on HTTP basic auth; Flower
  reads the variable itself, so the password never appears on a command line (``ps``).
* Without it Flower listens **only on loopback**. An address beyond loopback (``--address``, or
  ``FLOWER_EXPOSED_ADDRESS`` for the host address a container port is published on) without
  ``FLOWER_BASIC_AUTH`` is refused: the command exits with status 78 (EX_CONFIG) and says why.
* A malformed ``FLOWER_BASIC_AUTH`` (an entry without ``user:password``) is refused too.

Basic auth sends the password with every request: put TLS in front of an exposed Flower (a
reverse proxy), or reach it through an SSH tunnel.
"""

from __future__ import annotations

import argparse
import os
import sys

from core.security.urls import is_loopback_host

EX_CONFIG = 78


def is_loopback(address: str) -> bool:
    return is_loopback_host(address.strip().strip("[]").lower())


def check_exposure(bind: str, exposed: str | None, basic_auth: str | None) -> str | None:
    """The reason Flower must not start, or ``None`` (see the module contract)."""
    if basic_auth:
        entries = [e for e in basic_auth.split(",") if e.strip()]
        if not entries or not all(_valid_entry(e) for e in entries):
            return "FLOWER_BASIC_AUTH must be user:password[,user2:password2] with non-empty parts"
        return None
    for address in (bind, exposed):
        if address and not is_loopback(address):
            return (
                f"Flower would listen on {address} without a password: set FLOWER_BASIC_AUTH=user:password "
                "(README 'Security'), or keep it on 127.0.0.1"
            )
    return None


def _valid_entry(entry: str) -> bool:
    user, sep, password = entry.strip().partition(":")
    return bool(sep and user and password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.flower", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555")))
    parser.add_argument("--address", default=os.environ.get("FLOWER_ADDRESS", "127.0.0.1"))
    args = parser.parse_args(argv)
    reason = check_exposure(
        args.address, os.environ.get("FLOWER_EXPOSED_ADDRESS"), os.environ.get("FLOWER_BASIC_AUTH")
    )
    if reason:
        print(f"ops.flower: refusing to start: {reason}", file=sys.stderr)
        return EX_CONFIG
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--port={args.port}",
        f"--address={args.address}",
    ]
    sys.stdout.flush()
    os.execv(sys.executable, command)  # Flower takes FLOWER_BASIC_AUTH from the environment
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
