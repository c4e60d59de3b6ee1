"""The layout rules of ARCHITECTURE.md, enforced: who may import whom, no vendor names in shared code,
no import circles, small modules."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickwire import vendors
from tickwire.contract.envelope import CONTENT_TYPES

PKG = Path(__file__).resolve().parents[2] / "tickwire"
STAGES = ("ingest", "normalize", "bridges")
# Leaf modules any package may use: they import no stage, no vendor.
LEAVES = {"logs", "settings", "resources", "backoff", "recording", "topics", "topic_admin", "__init__"}
MAX_LINES = 400
# Application-level tools that exist to exercise vendors (benchmark inputs are vendor data).
VENDOR_NAMES_ALLOWED = ("bench/",)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m == "tickwire" or m.startswith("tickwire.")}


def area(module: str) -> str:
    """``tickwire.ingest.runner`` -> ``ingest``; ``tickwire.vendors.alpaca.parser`` -> ``vendors.alpaca``."""
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if parts[0] == "vendors" and len(parts) > 1:
        return f"vendors.{parts[1]}"
    return parts[0]


def _is_module(name: str) -> bool:
    return (PKG.parent / Path(*name.split("."))).with_suffix(".py").exists() or (
        PKG.parent / Path(*name.split(".")) / "__init__.py"
    ).exists()


def test_stages_import_the_contract_not_each_other() -> None:
    bad = []
    for mod, path in modules():
        a = area(mod)
        for imp in imports(path):
            b = area(imp)
            if a in STAGES and b in STAGES and a != b:
                bad.append(f"{mod} imports {imp} (stage {a} -> stage {b})")
            if a == "contract" and b not in ("contract", *LEAVES) and _is_module(imp):
                bad.append(f"{mod} imports {imp} (the contract stands on nothing but leaves)")
            if a.startswith("vendors.") and (b in STAGES or (b.startswith("vendors.") and b != a)):
                bad.append(f"{mod} imports {imp} (a vendor imports the contract, not a stage or vendor)")
    assert bad == []


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr


def test_shared_code_names_no_vendor() -> None:
    names = vendors.names()
    assert len(names) >= 4
    word = re.compile(r"(?<![a-z])(" + "|".join(map(re.escape, names)) + r")(?![a-z])", re.IGNORECASE)
    bad = []
    for mod, path in modules():
        rel = path.relative_to(PKG).as_posix()
        if area(mod).startswith("vendors.") or rel.startswith(VENDOR_NAMES_ALLOWED):
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            if text in CONTENT_TYPES:  # wire-format names ("fix" tag=value) are not vendor ids
                continue
            if m := word.search(text):
                bad.append(f"{rel}:{line}: {m.group(0)!r} in {text[:60]!r}")
    assert bad == []


def test_no_import_circles() -> None:
    graph = {m: {i for i in imports(p, top_level_only=True) if _is_module(i)} for m, p in modules()}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append([*stack[stack.index(node) :], node])
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is not a circle through the package
            if not nxt.startswith(node + "."):
                visit(nxt, stack, done)
        stack.pop()
        done.add(node)

    done: set[str] = set()
    for m in sorted(graph):
        visit(m, [], done)
    assert cycles == []


@pytest.mark.parametrize("mod_path", [p for _, p in modules()], ids=lambda p: str(p.relative_to(PKG)))
def test_module_size(mod_path: Path) -> None:
    n = len(mod_path.read_text().splitlines())
    assert n <= MAX_LINES, f"{mod_path.relative_to(PKG)} has {n} lines (> {MAX_LINES})"
