"""Human-readable summary of a pipeline run."""

from __future__ import annotations

from ops.status import Summary


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
