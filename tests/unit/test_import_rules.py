"""The import rules hold: the package map of docs/architecture.md, as import-linter contracts.

The contracts live in pyproject.toml (``[tool.importlinter]``); ``make lint`` runs them too. This
test runs them on the tree, proves on a copy of the tree that they catch an upward import, a
cycle and an import of the simulator or of ops, and checks what import-linter cannot see:
``celeryconfig.py`` (a single module, not a package) and packages the contracts do not name.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Folders of the repository that are not packages of the pipeline.
NOT_PIPELINE = {"tests", "bench", "scripts", "docs", "samples"}


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} missing: install the test extra (make venv)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> ``KEPT`` / ``BROKEN`` from lint-imports' report (``... KEPT (1 ignored import)``)."""
    found = (re.fullmatch(r"(.+) (KEPT|BROKEN)( \(.*\))?", line) for line in output.splitlines())
    return {m.group(1): m.group(2) for m in found if m}


def _broken(output: str) -> set[str]:
    return {name for name, verdict in _verdicts(output).items() if verdict == "BROKEN"}


def test_the_tree_keeps_every_import_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _verdicts(result.stdout) == {c["name"]: "KEPT" for c in _config()["contracts"]}


def test_the_contracts_catch_an_upward_import_a_cycle_and_imports_of_simulator_or_ops(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for package in _config()["root_packages"]:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    breaks = {
        "core/errors.py": "import domains.names",  # the ground floor reaching up
        "writers/lock.py": "import writers.flush",  # flush imports lock: a cycle
        "dispatcher/publisher.py": "import simulator",  # the dev tool inside the product
        "simulator/files.py": "import ops.cli",  # something under the top floor
    }
    for path, line in breaks.items():
        with (tree / path).open("a") as source:
            source.write(f"\n{line}\n")

    result = _lint_imports(tree)

    contracts = {c["id"]: c["name"] for c in _config()["contracts"]}
    assert result.returncode != 0
    assert _broken(result.stdout) == {
        contracts[i] for i in ("layers", "no-cycles", "simulator-stays-out", "ops-on-top")
    }, result.stdout


def test_every_package_of_the_pipeline_is_under_the_contracts() -> None:
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_PIPELINE and not path.parent.name.startswith(".")
    }
    assert packages == set(_config()["root_packages"])


def _project_imports(path: Path) -> set[str]:
    """Top-level project packages ``path`` imports (anywhere in the module, functions included)."""
    roots = set(_config()["root_packages"])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & roots


def test_celeryconfig_reads_only_the_ground_floor_and_the_domains() -> None:
    """Celery loads it by name (``config_from_object("celeryconfig")``) inside ``tasks``: it may use
    what tasks may use below it, and it must not reach the workers' own modules or anything above."""
    assert _project_imports(ROOT / "celeryconfig.py") <= {"core", "domains"}


def test_nothing_imports_celeryconfig_but_by_name() -> None:
    importers = [
        path.relative_to(ROOT)
        for package in _config()["root_packages"]
        for path in (ROOT / package).rglob("*.py")
        if "celeryconfig"
        in {
            alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
        }
    ]
    assert importers == []
