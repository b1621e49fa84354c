"""House rules (docs/design.md, "Layout"): no function in src/ over 80 lines, no module over
500, no public function over 8 parameters, common.smk at most 200 lines, each rule's script
named like its rule, and the layout map naming every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "protsae"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
MAX_PUBLIC_PARAMETERS = 8
MAX_COMMON_SMK_LINES = 200
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


def parameter_counts(source: str) -> dict[str, int]:
    """Parameters of every public module-level function and public method (self/cls not
    counted; ``*args``/``**kwargs`` count one each)."""
    counts = {}
    tree = ast.parse(source)
    nodes = [(node, "") for node in tree.body]
    nodes += [
        (item, f"{node.name}.")
        for node in tree.body
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
        for item in node.body
    ]
    for node, prefix in nodes:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name.startswith("_"):
            continue
        args = node.args
        names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        n = len(names) + (args.vararg is not None) + (args.kwarg is not None)
        counts[prefix + node.name] = n - (prefix != "" and names[:1] in (["self"], ["cls"]))
    return counts


def test_the_checker_sees_a_long_function() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(81))
    assert oversized_functions(f"def long():\n{body}\n\ndef short():\n    pass\n", 80) == [
        "long (82 lines)"
    ]


def test_the_checker_counts_parameters() -> None:
    source = (
        "def f(a, b, /, c, *args, d, **kw): pass\n"
        "def _private(a, b, c, d, e, f, g, h, i): pass\n"
        "class C:\n    def m(self, a, b): pass\n    @classmethod\n    def k(cls, a): pass\n"
    )
    assert parameter_counts(source) == {"f": 6, "C.m": 2, "C.k": 1}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_and_functions_are_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path}: split this module"
    assert oversized_functions(source, MAX_FUNCTION_LINES) == [], path


def test_public_functions_take_at_most_eight_parameters() -> None:
    over = {
        f"{path.relative_to(SRC).as_posix()}:{name}"
        for path in MODULES
        for name, n in parameter_counts(path.read_text()).items()
        if n > MAX_PUBLIC_PARAMETERS
    }
    assert over == set(), "group these parameters (a settings dataclass)"


def test_common_smk_holds_validation_and_paths_only() -> None:
    lines = (ROOT / "workflow" / "rules" / "common.smk").read_text().splitlines()
    assert len(lines) <= MAX_COMMON_SMK_LINES
    assert not any(line.startswith(("rule ", "checkpoint ")) for line in lines)


def rule_scripts() -> dict[str, str]:
    """``{rule: script file name}`` of every named rule with a ``script:``."""
    found = {}
    for path in sorted((ROOT / "workflow" / "rules").rglob("*.smk")):
        rule = None
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            named = re.match(r"\s*(?:rule|checkpoint)\s+(\w+)\s*:", line)
            if named:
                rule = named.group(1)
            elif re.match(r"\s*rule\s*:", line):
                rule = None  # a rule named in a loop (extract_pass_L*)
            elif line.strip() == "script:" and rule is not None:
                found[rule] = Path(lines[i + 1].strip().strip('"')).name
    return found


def test_each_rule_script_is_named_like_its_rule() -> None:
    scripts = rule_scripts()
    assert len(scripts) > 20
    assert {rule: s for rule, s in scripts.items() if s != f"{rule}.py"} == {}
    used = set(scripts.values())
    on_disk = {p.name for p in (ROOT / "workflow" / "scripts").glob("*.py")}
    assert on_disk - used == set(), "a script no rule runs"


def layout_map() -> dict[str, str]:
    """The Layout block of docs/design.md: ``{entry: its text}`` for each ``src/protsae`` line."""
    design = (ROOT / "docs" / "design.md").read_text()
    block = design.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif line.startswith("   ") and current is not None:
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


def test_the_layout_map_names_every_module() -> None:
    entries = layout_map()
    missing = []
    for path in MODULES:
        rel = path.relative_to(SRC)
        if rel.name == "__init__.py":
            continue
        if len(rel.parts) == 1:
            named = any(rel.name in text.split(" " * 4)[0] for text in entries.values())
        else:
            text = entries.get(f"{rel.parts[0]}/", "")
            named = re.search(rf"\b{re.escape(rel.stem)}\.py\b", text) is not None
        if not named:
            missing.append(str(rel))
    assert missing == []
