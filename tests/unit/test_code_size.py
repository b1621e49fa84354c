"""House rules on size: no function in src/ over 80 lines, no module over 500 (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "protsae"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
MODULES = sorted(SRC.rglob("*.py"))


def oversized_functions(source: str, limit: int) -> list[str]:
    """``name (lines)`` of every function or method longer than ``limit`` lines, decorators out."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{node.name} ({lines} lines)")
    return found


def test_the_checker_sees_a_long_function() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(81))
    assert oversized_functions(f"def long():\n{body}\n\ndef short():\n    pass\n", 80) == [
        "long (82 lines)"
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_and_functions_are_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path}: split this module"
    assert oversized_functions(source, MAX_FUNCTION_LINES) == [], path
