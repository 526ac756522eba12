"""Rewrite the settings table in README.md between its markers (``make docs``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from settings_table import rows  # noqa: E402 - after the path setup

readme = ROOT / "README.md"
text = readme.read_text()
new = re.sub(
    r"(<!-- settings:start -->\n).*?(\n<!-- settings:end -->)",
    lambda m: m.group(1) + "\n".join(rows()) + m.group(2),
    text,
    flags=re.S,
)
readme.write_text(new)
print("README settings table", "updated" if new != text else "unchanged")
