"""Human-readable summary of a pipeline run."""

from __future__ import annotations

from ops.status import Status, Summary


def _mib(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1024**2 else f"{size / 1024**2:.1f} MiB"


def render_summary(s: Summary) -> str:
    lines = ["", "=== claims pipeline summary ==="]
    for domain, counts in s.counters.items():
        if not counts and not s.tables.get(f"{domain}_events"):
            continue
        files, size = s.files.get(domain, (0, 0))
        lines.append(f"[{domain}]")
        lines.append(f"  events read            {counts.get('events_read', 0)}")
        lines.append(
            f"  events dispatched      {counts.get('events_dispatched', 0)}"
            f"  (duplicates skipped {counts.get('duplicates_skipped', 0)},"
            f" unparseable -> {domain}.events.dlq {counts.get('parse_errors', 0)})"
        )
        lines.append(
            f"  files uploaded         {counts.get('uploaded', 0)}"
            f"  ({counts.get('bytes_uploaded', 0)} bytes; lake holds {files} files, {_mib(size)})"
        )
        lines.append(f"  dead letters (tasks)   {s.dead_letters.get(domain, 0)} open")
        lines.append(
            f"  retries                {sum(v for k, v in counts.items() if k.endswith('_retried'))}"
        )
        if domain == "claimx":
            lines.append(f"  ClaimX API calls       {counts.get('api_calls', 0)}")
        for table, rows in sorted(s.tables.items()):
            if table.startswith(domain + "_"):
                lines.append(f"  table {table:28} {rows} rows")
    lines.append(f"lake: {s.lake}")
    for key, value in s.extra.items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def render_status(s: Status) -> str:
    """``pipeline status`` for a person: only the measures that are not zero, then the verdict."""
    lines = [f"kafka lag  {topic}: {n}" for topic, n in sorted(s.kafka_lag.items()) if n]
    lines += [f"queue      {name}: {n}" for name, n in sorted(s.queues.items()) if n]
    lines += [f"unacked    {s.unacked} (scheduled {s.scheduled})"] if s.unacked or s.scheduled else []
    lines += [f"staged     {table}: {n} rows" for table, n in sorted(s.staged.items()) if n]
    lines += [f"in flight  {what}: {n}" for what, n in sorted(s.in_flight.items()) if n]
    lines += [f"dead letters {domain}: {n} open" for domain, n in sorted(s.dead_letters.items()) if n]
    lines += [  # health: only what is wrong (an endpoint that does not answer is not running here)
        f"health     {what}: {state}"
        for what, state in sorted(s.health.items())
        if state not in ("ok", "ready", "no endpoint")
    ]
    lines += [_dispatcher_line(d) for d in s.dispatchers]
    lines.append("idle" if s.idle else "busy")
    return "\n".join(lines)


def _dispatcher_line(d: dict) -> str:
    """One dispatcher: paused (why) or running, its largest backlog against the marks, time paused."""
    marks = d.get("marks", {})
    queues = {k: v for k, v in d.get("backlog", {}).items() if "." in k}
    top = max(queues.items(), key=lambda kv: kv[1], default=("-", 0))
    why = ", ".join(f"{dom}: {reason}" for dom, reason in sorted(d.get("paused", {}).items()))
    return (
        f"dispatcher {d.get('member', '?')}: {d.get('state', '?')}{f' ({why})' if why else ''}"
        f"{' [stale]' if d.get('stale') else ''}; largest queue {top[0]} {top[1]}"
        f" (high {marks.get('high', '?')}, low {marks.get('low', '?')}); paused {d.get('paused_seconds_total', 0)} s"
    )
