"""Structure metrics of the asyncwasm package (issue 9), printed for an issue note.

    python tools/structure_metrics.py [REPO_ROOT]

- the largest import cycle among asyncwasm modules (strongly connected component), counting
  module-level and function-local imports, then also those under ``if TYPE_CHECKING:``;
- the function-local imports of asyncwasm modules;
- reads of private attributes (``x._name``, ``x`` not ``self``/``cls``) outside ``_engines/``,
  all of them and those of a name the reading module does not define itself (cross-module);
- ``Any`` in function signatures outside ``_engines/``.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for path in sorted((root / "asyncwasm").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(mods: dict[str, Path], module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    package = module.split(".")
    if mods[module].name != "__init__.py":
        package = package[:-1]
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    found = [name] if name in mods else []
    found += [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in mods]
    return found


def _largest_cycle(mods: dict[str, Path], edges: dict[str, set[str]]) -> list[str]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    best: list[str] = []

    def visit(v: str) -> None:
        nonlocal best
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 and len(component) > len(best):
                best = sorted(component)

    for v in mods:
        if v not in index:
            visit(v)
    return best


def main(root: Path) -> None:
    mods = _modules(root)
    runtime_edges: dict[str, set[str]] = defaultdict(set)
    all_edges: dict[str, set[str]] = defaultdict(set)
    local_imports: list[str] = []
    private_reads = cross_module_reads = anys = 0
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_engines = module.startswith("asyncwasm._engines")
        defined: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Tuple | ast.List)
                and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)
            ):
                defined.update(str(e.value) for e in node.value.elts if isinstance(e, ast.Constant))
        todo: list[tuple[ast.AST, tuple[ast.AST, ...]]] = [(tree, ())]
        while todo:
            node, parents = todo.pop()
            todo.extend((child, (*parents, node)) for child in ast.iter_child_nodes(node))
            if isinstance(node, ast.Import | ast.ImportFrom):
                typing_only = any(
                    isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test)
                    for p in parents
                )
                local = any(isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef) for p in parents)
                for target in _targets(mods, module, node):
                    if target == module:
                        continue
                    all_edges[module].add(target)
                    if not typing_only:
                        runtime_edges[module].add(target)
                    if local:
                        local_imports.append(f"{path.relative_to(root)}:{node.lineno} -> {target}")
            if in_engines:
                continue
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                private_reads += 1
                cross_module_reads += node.attr not in defined
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                annotations = [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                annotations += [a.vararg.annotation if a.vararg else None]
                annotations += [a.kwarg.annotation if a.kwarg else None, node.returns]
                for ann in annotations:
                    if ann is not None:
                        anys += sum(
                            isinstance(x, ast.Name) and x.id == "Any" for x in ast.walk(ann)
                        )
    for label, edges in (("runtime imports", runtime_edges), ("with TYPE_CHECKING", all_edges)):
        cycle = _largest_cycle(mods, edges)
        print(f"largest import cycle ({label}): {len(cycle)} modules {' '.join(cycle)}")
    print(f"function-local imports of asyncwasm modules: {len(local_imports)}")
    for line in local_imports:
        print(f"    {line}")
    print(f"private attribute reads outside _engines/: {private_reads}")
    print(f"  of names the reading module does not define (cross-module): {cross_module_reads}")
    print(f"Any in function signatures outside _engines/: {anys}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
