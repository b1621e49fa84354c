"""The library's import graph: no cycles, and no module imports a layer above its own.

A *unit* is a top-level module of ``protsae`` or a subpackage with everything in it
(``protsae.costs.plan`` belongs to unit ``costs``; the package's own ``__init__`` is unit ``""``).
``LAYERS`` orders the units from the foundation up; a module may import modules of its own unit
and of units listed before it. Importing a unit listed after its own is an *upward* import.
Every import counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: Units from the foundation up (docs/design.md, "Layout"). A new module gets a place here.
LAYERS = [
    # foundation: no protsae imports beyond these
    "version",
    "io",
    "progress",
    "conventions",
    "device",
    "filetypes",
    "ids",
    "tools",
    "huggingface",
    "config",
    # inputs
    "sources",
    "sequences",
    "store",
    # models and their activations
    "esm",
    "activations",
    "sae",
    "pretrain",
    # analyses of an SAE's latents
    "latents",
    "probes",
    "steering",
    # outputs for people
    "figures",
    "tables",
    "findings",
    "browser",
    "encoding",
    "costs",
    "clean",
    # entry points
    "cli",
    "__main__",
    "",
]


def module_names(src: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``src/protsae`` (packages by their name)."""
    names = {}
    for path in sorted((src / "protsae").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an import of ``name`` runs: itself, or the nearest package holding it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The protsae modules ``module`` imports anywhere in its file (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {_resolve(alias.name, modules) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else _resolve(base, modules))
    found.discard(None)
    found.discard(module)
    return {name for name in found if name == "protsae" or name.startswith("protsae.")}


def import_graph(src: Path) -> dict[str, set[str]]:
    modules = module_names(src)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def upward_imports(graph: dict[str, set[str]], layers: list[str]) -> list[str]:
    """``a -> b`` for every import of a unit listed after the importer's own."""
    rank = {name: i for i, name in enumerate(layers)}
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if rank[unit(target)] > rank[unit(source)]
    )


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "src" / "protsae" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "src"


def test_the_checks_find_a_planted_cycle_and_upward_import(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "__init__.py": "",
            "io.py": "def f():\n    from protsae.sae.model import M  # upward, and a cycle\n",
            "sae/__init__.py": "",
            "sae/model.py": "from ..io import f\nM = 1\n",
            "sae/train.py": "from protsae.sae import model\nimport protsae.io\n",
        },
    )
    graph = import_graph(src)
    assert graph["protsae.sae.model"] == {"protsae.io"}  # relative import resolved
    assert graph["protsae.sae.train"] == {"protsae.sae.model", "protsae.io"}
    assert cycles(graph) == [["protsae.io", "protsae.sae.model"]]
    assert upward_imports(graph, ["io", "sae", ""]) == ["protsae.io -> protsae.sae.model"]
    assert upward_imports(graph, ["sae", "io", ""]) == [
        "protsae.sae.model -> protsae.io",
        "protsae.sae.train -> protsae.io",
    ]


def test_every_unit_has_a_layer() -> None:
    units = {unit(name) for name in module_names(SRC)}
    assert units - set(LAYERS) == set(), "add the new unit to LAYERS"
    assert set(LAYERS) - units == set(), "LAYERS names a unit that no longer exists"


def test_no_import_cycle() -> None:
    assert cycles(import_graph(SRC)) == []


def test_no_upward_import() -> None:
    assert upward_imports(import_graph(SRC), LAYERS) == []
