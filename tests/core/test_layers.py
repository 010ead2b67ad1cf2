"""Apps depend one way (payouts -> payments -> orders -> catalog -> vendors -> accounts ->
outbox; see docs/architecture.md): a lower app reaches a higher one only through a hook the
higher one registers, never by importing it, lazily or not. Checked on the source, so an import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import marketlink

PACKAGE = Path(marketlink.__file__).parent
ORDER = ["outbox", "accounts", "vendors", "catalog", "orders", "payments", "payouts"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def apps_imported_by(path: Path) -> set[str]:
    return {
        name.split(".")[1]
        for name in imported_modules(path)
        if name.startswith("marketlink.") and name.split(".")[1] in ORDER
    }


@pytest.mark.parametrize("app", ["outbox", "accounts", "vendors", "catalog", "orders", "payments"])
def test_an_app_never_imports_a_higher_one(app):
    higher = set(ORDER[ORDER.index(app) + 1 :])
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(apps_imported_by(path) & higher)
        for path in (PACKAGE / app).rglob("*.py")
        if apps_imported_by(path) & higher
    }
    assert offenders == {}


@pytest.mark.parametrize("module", ["locking.py", "audit.py"])
def test_shared_modules_every_app_uses_import_no_app(module):
    assert apps_imported_by(PACKAGE / module) == set()
