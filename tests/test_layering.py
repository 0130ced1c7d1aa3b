"""The layering contract in ``.importlinter`` holds, and the check fails on an upward import.

Two checks read the same contract: import-linter itself (``lint-imports``, run by ``make lint``;
exercised here when it is installed) and a small AST-based check of our own, so that the rule is
enforced even where import-linter is not installed. Both count every import: module-level,
function-local and those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"

# Function-local imports allowed (module, function): the worker process's entry point imports the
# engine inside its ``try``, so that a failing import is reported to the parent process.
ALLOWED_LOCAL_IMPORTS = {("_pool", "_worker_main")}


@dataclass(frozen=True)
class Layer:
    modules: frozenset[str]
    independent: bool


def read_layers(config: Path = CONFIG) -> list[Layer]:
    """The layers of the contract, top first."""
    parser = configparser.ConfigParser()
    parser.read(config)
    layers = []
    for line in parser["importlinter:contract:layers"]["layers"].split("\n"):
        line = line.strip()
        if not line:
            continue
        sep = "|" if "|" in line else ":"
        layers.append(
            Layer(frozenset(part.strip() for part in line.split(sep)), independent=sep == "|")
        )
    return layers


def _top_module(package_dir: Path, path: Path) -> str:
    rel = path.relative_to(package_dir).with_suffix("")
    return rel.parts[0]


def _imported(package: str, module: str, node: ast.ImportFrom | ast.Import) -> set[str]:
    """The top-level modules of ``package`` that ``node`` (in ``module``) imports."""
    names: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == package and len(parts) > 1:
                names.add(parts[1])
        return names
    depth_in_package = module.count(".")  # "_engines._base" is one deeper than "_values"
    if node.level == 0:
        parts = (node.module or "").split(".")
        if parts[0] == package and len(parts) > 1:
            names.add(parts[1])
        return names
    if node.level - 1 > depth_in_package:
        return names
    base = module.split(".")[: depth_in_package - (node.level - 1)]
    target = [*base, *(node.module.split(".") if node.module else [])]
    if target:
        names.add(target[0])
    else:  # ``from . import _x``
        names.update(alias.name for alias in node.names)
    return names


def violations(package_dir: Path) -> list[str]:
    """Every import that breaks the contract, every module it does not place, and every
    function-local import outside ``ALLOWED_LOCAL_IMPORTS``."""
    package = package_dir.name
    layers = read_layers()
    index = {m: i for i, layer in enumerate(layers) for m in layer.modules}
    found: list[str] = []
    for path in sorted(package_dir.rglob("*.py")):
        top = _top_module(package_dir, path)
        if top == "__init__":
            continue  # the package itself re-exports from every layer
        if top not in index:
            found.append(f"{top}: not placed in any layer of .importlinter")
            continue
        rel = path.relative_to(package_dir).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for func in functions:
            if (top, func.name) in ALLOWED_LOCAL_IMPORTS:
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom) and _imported(
                    package, module, node
                ):
                    found.append(f"{module}:{node.lineno}: function-local import in {func.name}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(package, module, node) - {top}:
                if target not in index:
                    continue  # e.g. __version__ placed or a name, not a module
                mine, theirs = index[top], index[target]
                if theirs < mine or (theirs == mine and layers[mine].independent):
                    found.append(f"{module}:{node.lineno}: imports {target} (a higher layer)")
    return found


def _copy_package(tmp_path: Path) -> Path:
    target = tmp_path / "asyncwasm"
    shutil.copytree(ROOT / "asyncwasm", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return target


def test_every_module_is_placed_and_imports_only_lower_layers() -> None:
    assert violations(ROOT / "asyncwasm") == []


@pytest.mark.parametrize(
    "line",
    [
        "from ._runtime import get_default_runtime\n",  # module level
        "if TYPE_CHECKING:\n    from ._instance import Instance\n",  # typing only
        "def _late() -> None:\n    from . import _compile\n",  # function-local
    ],
    ids=["module-level", "type-checking", "function-local"],
)
def test_the_check_fails_on_an_upward_import(tmp_path: Path, line: str) -> None:
    package = _copy_package(tmp_path)
    values = package / "_values.py"
    values.write_text(values.read_text() + "\n" + line)
    found = violations(package)
    assert found
    assert all(v.startswith("_values:") for v in found)


def test_the_check_fails_on_a_module_it_does_not_place(tmp_path: Path) -> None:
    package = _copy_package(tmp_path)
    (package / "_new.py").write_text('"""A module nobody placed."""\n')
    assert violations(package) == ["_new: not placed in any layer of .importlinter"]


def test_siblings_of_an_independent_layer_do_not_import_each_other(tmp_path: Path) -> None:
    package = _copy_package(tmp_path)
    table = package / "_table.py"
    table.write_text(table.read_text() + "\nfrom ._memory import Memory as _M\n")
    assert [v.split(":")[0] for v in violations(package)] == ["_table"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


needs_import_linter = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None, reason="import-linter is not installed"
)


@needs_import_linter
def test_import_linter_keeps_the_contracts() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


@needs_import_linter
def test_import_linter_fails_on_an_upward_import(tmp_path: Path) -> None:
    package = _copy_package(tmp_path)
    values = package / "_values.py"
    values.write_text(values.read_text() + "\nfrom ._runtime import get_default_runtime\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "asyncwasm._values -> asyncwasm._runtime" in done.stdout
