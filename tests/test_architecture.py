"""The import layering of the package, as the README's Architecture section draws it.

The layers are written in one place, the first code block of the README's ``## Architecture`` section: one
line per layer, top layer first, the layer's parts (sub-packages, top-level modules, ``nntransfer`` for the
package's ``__init__``) comma-separated before two or more spaces. Every import of every module counts: at
module level and inside functions, and ``importlib.import_module`` / ``__import__`` of a string; only
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nntransfer"

# (importing module, line, imported module): one import statement of the package
Import = Tuple[str, int, str]


def readme_layers() -> List[List[str]]:
    """The layers of the README's Architecture block, bottom layer first."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Architecture\n", 1)[1]
    block = section.split("```", 2)[1].split("\n", 1)[1]
    layers = [[part.strip() for part in re.split(r"\s{2,}", line.strip())[0].split(",")]
              for line in block.splitlines() if line.strip()]
    return layers[::-1]


def package_modules() -> Dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> Set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped.update(id(inner) for inner in ast.walk(statement))
    return skipped


def _string_value(node: ast.AST, constants: Dict[str, str]):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Iterator[Import]:
    """The package modules that module ``name`` imports, each resolved to the deepest module that exists."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    # module-level string constants, so that ``import_module(_MODULE)`` counts like a literal
    constants = {target.id: statement.value.value for statement in tree.body if isinstance(statement, ast.Assign)
                 and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
                 for target in statement.targets if isinstance(target, ast.Name)}
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if called in ("import_module", "__import__"):
                value = _string_value(node.args[0], constants)
                targets = [value] if value else []
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                yield name, node.lineno, target


def all_imports() -> List[Import]:
    modules = package_modules()
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def part(module: str, depth: int = 1) -> str:
    """The part of the package at ``depth`` that ``module`` belongs to (``nntransfer`` for the root)."""
    parts = module.split(".")
    return parts[depth] if len(parts) > depth else parts[-1]


def where(module: str, line: int) -> str:
    return f"{package_modules()[module].relative_to(ROOT)}:{line}"


# ---------------------------------------------------------------------------- the tests


def test_imports_are_found_at_module_level_in_functions_and_by_string(tmp_path):
    modules = package_modules()
    found = {(source, target) for source, _, target in imports_of("nntransfer", modules["nntransfer"], modules)}
    assert ("nntransfer", "nntransfer.pipeline.runner") in found  # inside run()
    found = {target for _, _, target in imports_of("nntransfer.analysis", modules["nntransfer.analysis"], modules)}
    assert "nntransfer.analysis.diff" in found  # ``from package import module`` resolves to the module
    probe = tmp_path / "probe.py"
    probe.write_text("import importlib\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from nntransfer.cli import main\n_M = 'nntransfer.tables.store'\n"
                     "def f():\n    importlib.import_module(_M)\n    __import__('nntransfer.trainer')\n")
    found = {target for _, _, target in imports_of("probe", probe, modules)}
    assert found == {"nntransfer.tables.store", "nntransfer.trainer"}  # the TYPE_CHECKING import never runs


def test_every_part_of_the_package_has_one_layer():
    placed = [name for layer in readme_layers() for name in layer]
    parts = {part(module) for module in package_modules()}
    assert sorted(placed) == sorted(set(placed)), "a part is in two layers of the README's Architecture block"
    assert set(placed) == parts, (f"not in the README's Architecture block: {sorted(parts - set(placed))}; "
                                  f"there but not in the package: {sorted(set(placed) - parts)}")


def test_no_import_runs_up_a_layer_or_across_one():
    level = {name: index for index, layer in enumerate(readme_layers()) for name in layer}
    wrong = []
    for source, line, target in all_imports():
        lower, upper = part(target), part(source)
        if lower != upper and level.get(lower, -1) >= level.get(upper, -1):
            relation = "in the layer of" if level.get(lower) == level.get(upper) else "in a layer above"
            wrong.append(f"{where(source, line)} imports {target} ({lower} is {relation} {upper})")
    assert not wrong, "imports against the README's Architecture layers:\n" + "\n".join(wrong)


def test_no_two_parts_of_a_package_import_each_other():
    # at every level: the sub-packages and modules of one package, with what their modules import
    # (a package's own __init__ is their parent, not one of them)
    edges: Dict[Tuple[str, ...], Dict[str, Dict[str, Tuple[str, int, str]]]] = defaultdict(lambda: defaultdict(dict))
    for source, line, target in all_imports():
        a, b = source.split("."), target.split(".")
        shared = 0
        while shared < min(len(a), len(b)) and a[shared] == b[shared]:
            shared += 1
        if shared < len(a) and shared < len(b):
            edges[tuple(a[:shared])][a[shared]].setdefault(b[shared], (source, line, target))
    cycles = []
    for package, graph in sorted(edges.items()):
        for members in _cycles(graph):
            edges_within = [(a, b) for a in members for b in members if b in graph[a]]
            mutual = [(a, b) for a, b in edges_within if a in graph[b]]  # the imports to look at first
            pairs = [f"{a} -> {b}: {where(*graph[a][b][:2])} imports {graph[a][b][2]}" for a, b in mutual or edges_within]
            cycles.append(f"{'.'.join(package)}: {', '.join(members)} import each other ({'; '.join(pairs)})")
    assert not cycles, "parts that import each other:\n" + "\n".join(cycles)


def _cycles(graph) -> List[List[str]]:
    """The groups of parts that reach each other through their imports (strongly connected, two or more)."""

    def reach(start: str) -> Set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), {}):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {node: reach(node) for node in graph}
    groups = {tuple(sorted(n for n in graph if n == node or (n in reached[node] and node in reached[n])))
              for node in graph}
    return [list(group) for group in sorted(groups) if len(group) > 1]
