"""Print the settings table for README.md from the Settings model (env var, default, meaning)."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import Settings


def rows() -> list[str]:
    out = ["| Env var | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is PydanticUndefined and field.default_factory is not None:
            default = field.default_factory()
        if isinstance(default, list):
            default = ",".join(str(v) for v in default)
        shown = "" if default is None else str(default)
        if len(shown) > 40:
            shown = shown[:37] + "…"
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        out.append(
            f"| `{name.upper()}` | `{shown}` | {meaning} |"
            if shown
            else f"| `{name.upper()}` | | {meaning} |"
        )
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
