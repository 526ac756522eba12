"""docs/architecture.md follows the code: its package map is the import contracts' layer order, and
every ``file.py:name`` it cites (the walk of one event) exists."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
REFERENCE = re.compile(r"`([\w/]+\.py):([\w.]+)`")


def _defines(tree: ast.Module, qualname: str) -> bool:
    """``qualname`` (``Class.method`` or ``name``) is defined at module level in ``tree``."""
    body: list[ast.stmt] = tree.body
    for part in qualname.split("."):
        found = None
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == part:
                found = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


def test_every_cited_function_exists() -> None:
    references = REFERENCE.findall(DOC.read_text())
    assert len(references) >= 20, "the walk of one event lost its references"
    missing = [
        f"{path}:{name}"
        for path, name in references
        if not (ROOT / path).is_file() or not _defines(ast.parse((ROOT / path).read_text()), name)
    ]
    assert not missing, f"docs/architecture.md cites what the code no longer has: {missing}"


def test_the_package_map_lists_the_layers_of_the_import_contract() -> None:
    block = re.search(r"<!-- layers:start -->\n```\n(.*?)```\n<!-- layers:end -->", DOC.read_text(), re.S)
    assert block, "docs/architecture.md lost its package map markers"
    documented = [line.split()[0] for line in block.group(1).splitlines() if line.strip()]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["id"] == "layers")["layers"]
    assert documented == layers


def test_the_checker_finds_methods_and_reports_missing_names() -> None:
    tree = ast.parse("class A:\n    def run(self):\n        pass\n\ndef f():\n    pass\n\nx = 1\n")
    assert _defines(tree, "A.run") and _defines(tree, "f") and _defines(tree, "x")
    assert not _defines(tree, "A.stop") and not _defines(tree, "g") and not _defines(tree, "f.inner")
