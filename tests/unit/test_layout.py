"""What may import what: the production servers stand alone, and the public formats live in
servers/common, so that clients and tools never reach into a server's inside."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

TOOLS = ("devtools", "fake_client", "console", "loadtest", "tests")


def imports(path: Path) -> list[tuple[str, str]]:
    """(module imported, name of the enclosing function or '') for every import in a file."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, function))
            visit(child, inner)

    visit(ast.parse(path.read_text()), "")
    return found


def test_servers_import_no_development_tool() -> None:
    bad = []
    for path in (ROOT / "servers").rglob("*.py"):
        for module, function in imports(path):
            if module.split(".")[0] not in TOOLS:
                continue
            # The entry point offers the tools' commands when they are installed.
            if path == ROOT / "servers" / "cli.py" and function == "development_tools":
                continue
            bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert bad == []


def test_common_clients_and_tools_do_not_reach_into_a_server() -> None:
    bad = []
    for package in ("servers/common", "fake_client", "console", "loadtest"):
        for path in (ROOT / package).rglob("*.py"):
            for module, _ in imports(path):
                if module.startswith(("servers.game", "servers.match", "servers.auth")):
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert bad == []


def test_servers_holds_only_what_production_runs() -> None:
    entries = {p.name for p in (ROOT / "servers").iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__.py", "auth", "cli.py", "common", "game", "match"}
