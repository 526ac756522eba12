"""README stays true to the code: its settings table is the one the Settings model generates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table__matches_the_settings_model() -> None:
    """Regenerate with `make docs` when this fails."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert block, "README lost its settings markers"
    generated = subprocess.run(
        [sys.executable, "scripts/settings_table.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert block.group(1).strip() == generated


def test_readme_names_the_two_commands_and_ci_calls_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
