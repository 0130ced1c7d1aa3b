"""``Instance`` (JS ``WebAssembly.Instance``): linking the import object, and the exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from ._binary import ImportInfo
from ._exceptions import LinkError, RangeError
from ._function import Function, host_function_handle, note_module_types
from ._global import Global
from ._jspi import Suspending, isolated_store, suspending_function_handle
from ._memory import Memory
from ._module import Module, _check_module
from ._runtime import Runtime, StoreCell
from ._table import Table
from ._tag import Tag
from ._types import (
    MAX_TABLE_LENGTH,
    NUMBER_TYPES,
    FuncType,
    GlobalType,
    MemoryType,
    TableType,
    TagType,
)
from ._values import to_engine_value

__all__ = ["Exports", "Instance"]

_PUBLIC_CLASS = {"memory": Memory, "table": Table, "global": Global, "tag": Tag}


class Exports(Mapping[str, Any]):
    """An instance's exports: a read-only mapping in export order, with attribute access.

    ``exports["f"]`` and ``exports.f`` give the same object every time. Assigning or deleting
    raises ``TypeError``.
    """

    __slots__ = ("_items",)

    _items: dict[str, object]

    def __init__(self, items: dict[str, object]) -> None:
        object.__setattr__(self, "_items", items)

    def __getitem__(self, name: str) -> object:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getattr__(self, name: str) -> object:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"the instance has no export named {name!r}") from None

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise TypeError("an instance's exports are read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise TypeError("an instance's exports are read-only")

    def __setitem__(self, name: str, value: object) -> NoReturn:
        raise TypeError("an instance's exports are read-only")

    def __delitem__(self, name: str) -> NoReturn:
        raise TypeError("an instance's exports are read-only")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *(n for n in self._items if n.isidentifier())]

    def __repr__(self) -> str:
        return f"<asyncwasm.Exports {list(self._items)}>"


class Instance:
    """An instantiated module: ``Instance(module, imports=None)``.

    Synchronous, like ``new WebAssembly.Instance``; runs the start function. ``imports`` maps
    module names to mappings of field names to values. Each import is looked up once, in the
    module's import order: a missing or non-mapping namespace is ``TypeError``; a missing field
    or a value of the wrong kind or type is ``LinkError``. Imported objects stay alive as long
    as the instance does.
    """

    __slots__ = ("__weakref__", "_cell", "_exports", "_handle", "_imports_kept", "_module")

    _module: Module
    _cell: StoreCell
    _handle: Any
    _exports: Exports
    _imports_kept: tuple[object, ...]

    def __init__(self, module: Module, imports: object = None) -> None:
        _check_module(module)
        rt = module._runtime
        cell = module._store_cell if module._store_cell is not None else rt._store()
        values: list[object] = []
        handles, kept = _resolve_imports(module, imports, cell, values)
        # JSPI: an instance with Suspending imports may need a store of its own (see _jspi).
        isolated = isolated_store(rt, values) if module._store_cell is None else None
        if isolated is not None:
            cell = isolated
            handles, kept = _resolve_values(module, values, cell)
        _check_table_sizes(module)
        note_module_types(cell, module._info.types)
        handle = rt._engine.instantiate(cell.handle, module._handle, handles)
        self._module = module
        self._cell = cell
        self._handle = handle
        # The instance reads imported memories and globals directly: keep them alive (on wasmer a
        # collected import is a use-after-free).
        self._imports_kept = kept
        self._exports = _build_exports(
            module, cell, rt._engine.instance_exports(cell.handle, handle), kept
        )

    @property
    def exports(self) -> Exports:
        """The instance's exports (a read-only mapping with attribute access)."""
        return self._exports

    @property
    def module(self) -> Module:
        return self._module

    def __repr__(self) -> str:
        return f"<asyncwasm.Instance exports={list(self._exports)}>"


def _check_table_sizes(module: Module) -> None:
    """JS: instantiating a module that defines a table longer than the embedder limit is a
    RangeError (compiling it is fine)."""
    info = module._info
    imported = sum(1 for imp in info.imports if imp.kind == "table")
    for index, table in enumerate(info.tables[imported:], start=imported):
        if table.limits.minimum > MAX_TABLE_LENGTH:
            raise RangeError(
                f"table {index} has {table.limits.minimum} entries, more than the limit "
                f"{MAX_TABLE_LENGTH}"
            )


def _link_error(imp: ImportInfo, message: str) -> LinkError:
    return LinkError(f"import {imp.module}.{imp.name}: {message}")


def _resolve_imports(
    module: Module, imports: object, cell: StoreCell, values: list[object] | None = None
) -> tuple[list[Any], tuple[object, ...]]:
    """Look every import up once, in module order; returns engine handles and the objects to
    keep alive. The values looked up are appended to ``values`` when given."""
    infos = module._info.imports
    if imports is None:
        if infos:
            raise TypeError("this module has imports: pass an import object")
        return [], ()
    if not isinstance(imports, Mapping):
        raise TypeError(f"the import object must be a mapping, not {type(imports).__name__}")
    rt = module._runtime
    handles: list[Any] = []
    kept: list[object] = []
    # One host function per (callable, type): a module may import one name twice, and an engine
    # given two different functions for one name refuses to link (wasmer).
    host_functions: dict[tuple[int, FuncType], Any] = {}
    for imp in infos:
        try:
            namespace = imports[imp.module]
        except KeyError:
            raise TypeError(f"the import object has no module {imp.module!r}") from None
        if not isinstance(namespace, Mapping):
            raise TypeError(
                f"imports[{imp.module!r}] must be a mapping, not {type(namespace).__name__}"
            )
        try:
            value = namespace[imp.name]
        except KeyError:
            raise _link_error(imp, "missing from the import object") from None
        if values is not None:
            values.append(value)
        handle, keep = _resolve_one(rt, cell, imp, value, host_functions)
        handles.append(handle)
        kept.append(keep)
    return handles, tuple(kept)


def _resolve_values(
    module: Module, values: list[object], cell: StoreCell
) -> tuple[list[Any], tuple[object, ...]]:
    """``_resolve_imports`` again for values already looked up (no second lookup), in ``cell``."""
    rt = module._runtime
    host_functions: dict[tuple[int, FuncType], Any] = {}
    pairs = [
        _resolve_one(rt, cell, imp, value, host_functions)
        for imp, value in zip(module._info.imports, values, strict=True)
    ]
    return [h for h, _ in pairs], tuple(k for _, k in pairs)


def _same_runtime(rt: Runtime, imp: ImportInfo, obj: Any) -> None:
    # An object made with ``cls.__new__`` and never initialised (JS: ``Object.create(
    # WebAssembly.Global.prototype)``) is not a real one: LinkError, not AttributeError.
    if not hasattr(obj, "_handle"):
        raise _link_error(imp, f"the {type(obj).__name__} object was never initialised")
    if obj._runtime is not rt:
        raise _link_error(imp, "the object belongs to another asyncwasm.Runtime")


def _resolve_one(
    rt: Runtime,
    cell: StoreCell,
    imp: ImportInfo,
    value: object,
    host_functions: dict[tuple[int, FuncType], Any],
) -> tuple[Any, object]:
    t = imp.type
    if isinstance(t, FuncType) and isinstance(value, Suspending):  # JSPI
        key = (id(value), t)
        if key not in host_functions:
            host_functions[key] = suspending_function_handle(rt, cell, value, t)
        return host_functions[key], value
    if isinstance(t, FuncType):
        if isinstance(value, Function):
            _same_runtime(rt, imp, value)
            return value._handle, value
        if not callable(value):
            raise _link_error(imp, f"expected a callable, got {type(value).__name__}")
        fn: Callable[..., object] = value
        key = (id(fn), t)  # fn stays alive in ``kept`` while the cache is in use
        if key not in host_functions:
            host_functions[key] = host_function_handle(rt, cell, fn, t)
        return host_functions[key], value
    if isinstance(t, GlobalType):
        if isinstance(value, Global):
            _same_runtime(rt, imp, value)
            return value._handle, value
        return _global_from_value(rt, cell, imp, t, value)
    expected = _PUBLIC_CLASS[imp.kind]
    if not isinstance(value, expected):
        raise _link_error(
            imp, f"expected an asyncwasm.{expected.__name__}, got {type(value).__name__}"
        )
    _same_runtime(rt, imp, value)
    handle: Any = value._handle  # type: ignore[attr-defined]
    return handle, value


def _global_from_value(
    rt: Runtime, cell: StoreCell, imp: ImportInfo, t: GlobalType, value: object
) -> tuple[Any, object]:
    """A plain value for a global import: allowed for immutable globals, as in JS."""
    if t.mutable:
        raise _link_error(imp, "a mutable global must be imported as an asyncwasm.Global")
    vt = t.value
    if vt in NUMBER_TYPES:
        is_number = isinstance(value, (int, float))
        if not is_number or (vt in ("i32", "i64") and isinstance(value, float)):
            raise _link_error(
                imp,
                f"expected an asyncwasm.Global or a number for {vt}, got {type(value).__name__}",
            )
    elif vt == "v128":
        raise _link_error(imp, "a v128 global must be imported as an asyncwasm.Global")
    glob = Global._from_handle(
        rt, cell, rt._engine.global_new(cell.handle, t, to_engine_value(value, vt, rt)), t
    )
    return glob._handle, glob


def _build_exports(
    module: Module, cell: StoreCell, handles: list[Any], kept: tuple[object, ...]
) -> Exports:
    rt = module._runtime
    info = module._info
    # An export of an imported entity is the very object that was imported (JS identity).
    imported: dict[str, list[object]] = {}
    for imp, obj in zip(info.imports, kept, strict=True):
        imported.setdefault(imp.kind, []).append(obj)
    items: dict[str, object] = {}
    for export, handle in zip(info.exports, handles, strict=True):
        t = export.type
        same_kind = imported.get(export.kind, [])
        if export.index < len(same_kind):
            obj = same_kind[export.index]
            # An imported Python callable is exported as the Function that wraps it (below);
            # an imported exported function, memory, table, global or tag as itself.
            if not isinstance(t, FuncType) or isinstance(obj, Function):
                items[export.name] = obj
                continue
        if isinstance(t, FuncType):
            items[export.name] = rt._function_for_handle(handle, cell, t)
        elif isinstance(t, MemoryType):
            items[export.name] = Memory._from_handle(rt, cell, handle, t)
        elif isinstance(t, TableType):
            items[export.name] = Table._from_handle(rt, cell, handle, t)
        elif isinstance(t, GlobalType):
            items[export.name] = Global._from_handle(rt, cell, handle, t)
        elif isinstance(t, TagType):
            items[export.name] = rt._tag_for_handle(handle, cell, t)
    # Several exports of one defined entity are one object too.
    return Exports(_dedupe_by_index(info.exports, items))


def _dedupe_by_index(exports: Any, items: dict[str, object]) -> dict[str, object]:
    first: dict[tuple[str, int], object] = {}
    for export in exports:
        key = (export.kind, export.index)
        if key in first:
            items[export.name] = first[key]
        else:
            first[key] = items[export.name]
    return items
