"""The cloud never imports the agent (docs/architecture.md: what both need lives in broker/)."""

from __future__ import annotations

import ast
from pathlib import Path

CLOUD = Path(__file__).resolve().parents[2] / "cloud_api"


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_cloud_module_imports_the_agent() -> None:
    offenders = sorted(str(p.relative_to(CLOUD)) for p in CLOUD.rglob("*.py") if "agent" in imported_packages(p))
    assert offenders == []
    assert len(list(CLOUD.rglob("*.py"))) > 50  # the walk did see the package
