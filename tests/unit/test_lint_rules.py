"""Every lint ignore in the tree names what it silences and says why.

``ruff`` (RUF100) already fails on a ``# noqa`` that silences nothing, and mypy (``strict``) on an
unused ``# type: ignore`` in the packages it checks; this test adds the reasons:

* ``# noqa: CODE[, CODE] - reason`` (a bare ``# noqa`` or one without a reason fails),
* ``# type: ignore[code]  # reason`` (a bare ``# type: ignore`` or one without a reason fails),
* every rule in ``[tool.ruff.lint] ignore`` carries a comment on its line.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not the project's code: the virtual environment, build output, the local stack's files.
_SKIP = {".venv", ".git", ".stack", "lake", "build", "dist", "node_modules", "__pycache__"}

_NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")
_NOQA_OK = re.compile(r"^:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")
_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
_IGNORE_OK = re.compile(r"^\[[a-z-]+(\s*,\s*[a-z-]+)*\]\s+#\s*\S")


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(ROOT.rglob("*.py"))
        if not _SKIP & set(path.relative_to(ROOT).parts[:-1]) and not path.name.startswith(".")
    ]


def offending_lines(text: str) -> list[tuple[int, str]]:
    """Lines of ``text`` whose noqa / type-ignore lacks its codes or its reason."""
    bad = []
    for number, line in enumerate(text.splitlines(), start=1):
        noqa = _NOQA.search(line)
        if noqa and not _NOQA_OK.match(noqa.group("rest")):
            bad.append((number, line.strip()))
        ignore = _IGNORE.search(line)
        if ignore and not _IGNORE_OK.match(ignore.group("rest")):
            bad.append((number, line.strip()))
    return bad


def test_the_checker_tells_a_reasoned_ignore_from_a_bare_one() -> None:
    good = "x = f()  # noqa: E731, B008 - why\ny = g()  # type: ignore[arg-type]  # why\n"
    bare = "x = f()  # noqa\nx = f()  # noqa: E731\ny = g()  # type: ignore\ny = g()  # type: ignore[misc]\n"
    assert offending_lines(good) == []
    assert [n for n, _ in offending_lines(bare)] == [1, 2, 3, 4]


def test_every_noqa_and_type_ignore_names_its_codes_and_says_why() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{number}: {line}"
        for path in _sources()
        # This file's own examples and patterns are not ignores.
        if path != Path(__file__).resolve()
        for number, line in offending_lines(path.read_text())
    ]
    assert not bad, "ignores without codes or reason:\n" + "\n".join(bad)


def test_every_ruff_ignore_in_pyproject_says_why() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    ignored = tomllib.loads(text)["tool"]["ruff"]["lint"].get("ignore", [])
    block = re.search(r"^\[tool\.ruff\.lint\]\n(.*?)(?=^\[)", text + "\n[", re.S | re.M)
    assert block
    for code in ignored:
        line = next((ln for ln in block.group(1).splitlines() if f'"{code}"' in ln), "")
        assert re.search(rf'"{code}",?\s*#\s*\S', line), f"ruff ignore {code} has no reason on its line"
