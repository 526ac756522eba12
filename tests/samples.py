"""Where the sample data lives (copied from the domain specification into the repo)."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
