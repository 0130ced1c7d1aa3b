"""``Instance`` (JS ``WebAssembly.Instance``): linking the import object, and the exports."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NamedTuple, NoReturn

from ._binary import ImportInfo
from ._context import (
    StoreCell,
    StoreContext,
    StoreObject,
    cell_of,
    context_of,
    from_handle,
    handle_of,
    type_of,
)
from ._engines._base import (
    ExternHandle,
    FuncHandle,
    InstanceHandle,
    MemoryHandle,
    TableHandle,
    TagHandle,
)
from ._exceptions import LinkError, RangeError
from ._function import Function, host_function_handle
from ._global import Global
from ._jspi import Suspending, isolated_store, suspending_function_handle
from ._memory import Memory
from ._module import Module, ModuleParts, parts_of
from ._table import Table
from ._tag import Tag
from ._types import (
    JS_VALUE_TYPES,
    MAX_TABLE_LENGTH,
    NUMBER_TYPES,
    ExternType,
    FuncType,
    GlobalType,
    Limits,
    MemoryType,
    TableType,
    TagType,
    wasm_text,
)
from ._values import to_engine_value

__all__ = ["Exports", "Instance", "InstantiatedSource"]

_PUBLIC_CLASS: dict[str, type[StoreObject[Any]]] = {
    "memory": Memory,
    "table": Table,
    "global": Global,
    "tag": Tag,
}


class Exports(Mapping[str, object]):
    """An instance's exports: a read-only mapping in export order, with attribute access.

    ``exports["f"]`` and ``exports.f`` give the same object every time. Assigning or deleting
    raises ``TypeError``. Typing: item access gives ``object`` (narrow it with ``isinstance``);
    attribute access gives ``Any``, because what ``exports.add`` is depends on the module, which
    no type checker sees: ``exports.add(1, 2)`` and ``exports.memory.buffer`` type-check as
    written.
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

    def __getattr__(self, name: str) -> Any:
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

    __slots__ = (
        "__weakref__",
        "_cell",
        "_exports",
        "_handle",
        "_imports_kept",
        "_module",
        "_unwrapped",
    )

    _module: Module
    _cell: StoreCell
    _handle: InstanceHandle
    _exports: Exports | None
    _imports_kept: tuple[object, ...]
    _unwrapped: tuple[_Plan, StoreContext, list[ExternHandle]] | None
    """The engine's export handles (and what wrapping them needs) until ``exports`` wraps them."""

    def __init__(self, module: Module, imports: object = None) -> None:
        parts = parts_of(module)
        context = parts.context
        engine = context.engine
        cell = parts.cell if parts.cell is not None else context.store()
        values: list[object] = []
        if imports is None and not parts.info.imports:
            handles: list[ExternHandle] = []
            kept: tuple[object, ...] = ()
        else:
            handles, kept = _resolve_imports(parts, imports, cell, values)
        # JSPI: an instance with Suspending imports may need a store of its own (see _jspi).
        isolated = isolated_store(context, values) if parts.cell is None and values else None
        if isolated is not None:
            cell = isolated
            handles, kept = _resolve_values(parts, values, cell)
        plan = _plan_of(module, parts)
        if plan.table_error is not None:
            raise RangeError(plan.table_error)
        if context.limits is not None:
            _check_limits(context, parts)
        engine.note_declared_types(cell.handle, parts.info.types)
        handle = engine.instantiate(cell.handle, parts.handle, handles)
        if context.limits is not None and context.limits.instances is not None:
            _count_instance(self, context)
        self._module = module
        self._cell = cell
        self._handle = handle
        # The instance reads imported memories and globals directly: keep them alive (on wasmer a
        # collected import is a use-after-free).
        self._imports_kept = kept
        # The engine's export handles are made here (on wasmer, on the thread that owns the
        # instance); their public objects on first use of ``exports``, which is the cost of
        # ``Instance()`` a caller only pays once it asks (issue 10). Identity is unaffected: a
        # function that came out of a table meanwhile is found in the context's table.
        self._exports = None
        self._unwrapped = (plan, context, engine.instance_exports(cell.handle, handle))

    @property
    def exports(self) -> Exports:
        """The instance's exports (a read-only mapping with attribute access)."""
        exports = self._exports
        if exports is None:
            with _WRAPPING:  # one set of objects, whichever thread asks first
                exports = self._exports
                if exports is None:
                    assert self._unwrapped is not None
                    plan, context, handles = self._unwrapped
                    exports = _build_exports(plan, context, self._cell, handles, self._imports_kept)
                    self._exports, self._unwrapped = exports, None
        return exports

    @property
    def module(self) -> Module:
        return self._module

    def __repr__(self) -> str:
        return f"<asyncwasm.Instance exports={list(self.exports)}>"


_WRAPPING: Final = threading.Lock()


class InstantiatedSource(NamedTuple):
    """What ``instantiate(bytes, imports)`` gives: the compiled module and its instance."""

    module: Module
    instance: Instance


class _Plan(NamedTuple):
    """What instantiating a module needs that depends on the module only: worked out once per
    ``Module`` (``_plan_of``), not per instance."""

    table_error: str | None
    """JS: instantiating a module that defines a table longer than the embedder limit is a
    RangeError (compiling it is fine): its message, or ``None``."""
    exports: tuple[tuple[str, str, ExternType, int, str | None], ...]
    """Per export, in order: name, kind, type, the position in the import list of the imported
    entity it re-exports (-1 for a defined one), and the name of an earlier export of the same
    entity (JS: one object), or ``None``."""


_PLANS: weakref.WeakKeyDictionary[Module, _Plan] = weakref.WeakKeyDictionary()


def _plan_of(module: Module, parts: ModuleParts) -> _Plan:
    plan = _PLANS.get(module)
    if plan is None:
        plan = _PLANS.setdefault(module, _make_plan(parts))
    return plan


def _make_plan(parts: ModuleParts) -> _Plan:
    info = parts.info
    table_error = None
    imported_tables = sum(1 for imp in info.imports if imp.kind == "table")
    for index, table in enumerate(info.tables[imported_tables:], start=imported_tables):
        if table.limits.minimum > MAX_TABLE_LENGTH:
            table_error = (
                f"table {index} has {table.limits.minimum} entries, more than the limit "
                f"{MAX_TABLE_LENGTH}"
            )
            break
    # Positions in the import list of each kind's imports, in their index space's order.
    positions: dict[str, list[int]] = {}
    for position, imp in enumerate(info.imports):
        positions.setdefault(imp.kind, []).append(position)
    first: dict[tuple[str, int], str] = {}
    exports = []
    for export in info.exports:
        same_kind = positions.get(export.kind, [])
        position = same_kind[export.index] if export.index < len(same_kind) else -1
        alias = first.setdefault((export.kind, export.index), export.name)
        exports.append(
            (
                export.name,
                export.kind,
                export.type,
                position,
                alias if alias != export.name else None,
            )
        )
    return _Plan(table_error, tuple(exports))


def _check_limits(context: StoreContext, parts: ModuleParts) -> None:
    """The runtime's ``Limits`` at instantiation (the same on every engine): the live instance
    count, and memories or tables the module defines starting larger than allowed."""
    limits = context.limits
    assert limits is not None
    if limits.instances is not None and context.live_instances >= limits.instances:
        raise RangeError(f"the runtime has {context.live_instances} live instances, its limit")
    info = parts.info
    kinds = [imp.kind for imp in info.imports]
    if limits.memory is not None:
        for index, memory in enumerate(info.memories[kinds.count("memory") :]):
            size = memory.limits.minimum << memory.page_size_log2
            if size > limits.memory:
                raise RangeError(
                    f"memory {index} starts at {size} bytes, over the limit of {limits.memory}"
                )
    if limits.table_elements is not None:
        for index, table in enumerate(info.tables[kinds.count("table") :]):
            if table.limits.minimum > limits.table_elements:
                raise RangeError(
                    f"table {index} starts with {table.limits.minimum} elements, over the "
                    f"limit of {limits.table_elements}"
                )


def _count_instance(instance: Instance, context: StoreContext) -> None:
    """``Limits.instances``: count ``instance`` as live until it is garbage."""
    context.live_instances += 1
    weakref.finalize(instance, _instance_gone, weakref.ref(context))


def _instance_gone(context_ref: weakref.ref[StoreContext]) -> None:
    context = context_ref()
    if context is not None:
        context.live_instances -= 1


def _link_error(imp: ImportInfo, message: str) -> LinkError:
    return LinkError(f"import {imp.module}.{imp.name}: {message}")


def _resolve_imports(
    parts: ModuleParts, imports: object, cell: StoreCell, values: list[object] | None = None
) -> tuple[list[ExternHandle], tuple[object, ...]]:
    """Look every import up once, in module order; returns engine handles and the objects to
    keep alive. The values looked up are appended to ``values`` when given."""
    infos = parts.info.imports
    if imports is None:
        if infos:
            raise TypeError("this module has imports: pass an import object")
        return [], ()
    if not isinstance(imports, Mapping):
        raise TypeError(f"the import object must be a mapping, not {type(imports).__name__}")
    context = parts.context
    handles: list[ExternHandle] = []
    kept: list[object] = []
    # One host function per (callable, type): a module may import one name twice, and an engine
    # given two different functions for one name refuses to link (wasmer).
    host_functions: dict[tuple[int, FuncType], FuncHandle] = {}
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
        handle, keep = _resolve_one(context, cell, imp, value, host_functions)
        handles.append(handle)
        kept.append(keep)
    return handles, tuple(kept)


def _resolve_values(
    parts: ModuleParts, values: list[object], cell: StoreCell
) -> tuple[list[ExternHandle], tuple[object, ...]]:
    """``_resolve_imports`` again for values already looked up (no second lookup), in ``cell``."""
    host_functions: dict[tuple[int, FuncType], FuncHandle] = {}
    pairs = [
        _resolve_one(parts.context, cell, imp, value, host_functions)
        for imp, value in zip(parts.info.imports, values, strict=True)
    ]
    return [h for h, _ in pairs], tuple(k for _, k in pairs)


def _import_handle(context: StoreContext, imp: ImportInfo, obj: StoreObject[Any]) -> ExternHandle:
    """The engine handle of an asyncwasm object given for ``imp``, refusing one of another
    runtime."""
    try:
        handle = handle_of(obj, ExternHandle)
    except TypeError as error:
        # Made with ``cls.__new__`` and never initialised (JS: ``Object.create(
        # WebAssembly.Global.prototype)``): not a real one, so LinkError, not AttributeError.
        raise _link_error(imp, str(error)) from None
    if context_of(obj) is not context:
        raise _link_error(imp, "the object belongs to another asyncwasm.Runtime")
    given = _given_type(context, obj, handle)
    if given is not None and not _matches(given, imp.type):
        raise _link_error(imp, f"expected {wasm_text(imp.type)}, got {wasm_text(given)}")
    return handle


def _given_type(
    context: StoreContext, obj: StoreObject[Any], handle: ExternHandle
) -> ExternType | None:
    """The type of an object given for an import as matching sees it (a memory's or table's
    current size, not its initial one), or ``None`` when unknown (left to the engine)."""
    t: object = type_of(obj)
    store = cell_of(obj).handle
    if isinstance(t, MemoryType) and isinstance(handle, MemoryHandle):
        pages = context.engine.memory_pages(store, handle)
        return MemoryType(Limits(pages, t.limits.maximum), t.shared, t.memory64, t.page_size_log2)
    if isinstance(t, TableType) and isinstance(handle, TableHandle):
        length = context.engine.table_size(store, handle)
        return TableType(t.element, Limits(length, t.limits.maximum), t.table64)
    if isinstance(t, (FuncType, GlobalType, TagType)):
        return t
    return None


def _matches(given: ExternType, expected: ExternType) -> bool:
    """Import matching (core spec, "Import Subtyping") for the types the JS API can name;
    anything else is left to the engine (reference subtyping of GC types, ...)."""
    if isinstance(given, MemoryType) and isinstance(expected, MemoryType):
        return (
            given.shared == expected.shared
            and given.memory64 == expected.memory64
            and given.page_size_log2 == expected.page_size_log2
            and _limits_match(given.limits, expected.limits)
        )
    if isinstance(given, TableType) and isinstance(expected, TableType):
        if not {given.element, expected.element} <= JS_VALUE_TYPES:
            return True
        return (
            given.element == expected.element
            and given.table64 == expected.table64
            and _limits_match(given.limits, expected.limits)
        )
    if isinstance(given, (FuncType, GlobalType, TagType)) and type(given) is type(expected):
        if not _plain(given) or not _plain(expected):
            return True
        return given == expected
    return True


def _limits_match(given: Limits, expected: Limits) -> bool:
    if given.minimum < expected.minimum:
        return False
    if expected.maximum is None:
        return True
    return given.maximum is not None and given.maximum <= expected.maximum


def _plain(t: FuncType | GlobalType | TagType) -> bool:
    """Whether every value type of ``t`` is one the JS API names (there equality is matching)."""
    if isinstance(t, GlobalType):
        return t.value in JS_VALUE_TYPES
    values = t.params + t.results if isinstance(t, FuncType) else t.params
    return all(v in JS_VALUE_TYPES for v in values)


def _resolve_one(
    context: StoreContext,
    cell: StoreCell,
    imp: ImportInfo,
    value: object,
    host_functions: dict[tuple[int, FuncType], FuncHandle],
) -> tuple[ExternHandle, object]:
    t = imp.type
    if isinstance(t, FuncType) and isinstance(value, Suspending):  # JSPI
        key = (id(value), t)
        if key not in host_functions:
            host_functions[key] = suspending_function_handle(context, cell, value, t)
        return host_functions[key], value
    if isinstance(t, FuncType):
        if isinstance(value, Function):
            return _import_handle(context, imp, value), value
        if not callable(value):
            raise _link_error(imp, f"expected a callable, got {type(value).__name__}")
        fn: Callable[..., object] = value
        key = (id(fn), t)  # fn stays alive in ``kept`` while the cache is in use
        if key not in host_functions:
            host_functions[key] = host_function_handle(context, cell, fn, t)
        return host_functions[key], value
    if isinstance(t, GlobalType):
        if isinstance(value, Global):
            return _import_handle(context, imp, value), value
        return _global_from_value(context, cell, imp, t, value)
    expected = _PUBLIC_CLASS[imp.kind]
    if not isinstance(value, expected):
        raise _link_error(
            imp, f"expected an asyncwasm.{expected.__name__}, got {type(value).__name__}"
        )
    return _import_handle(context, imp, value), value


def _global_from_value(
    context: StoreContext, cell: StoreCell, imp: ImportInfo, t: GlobalType, value: object
) -> tuple[ExternHandle, object]:
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
    handle = context.engine.global_new(cell.handle, t, to_engine_value(value, vt, context))
    return handle, from_handle(Global, context, cell, handle, t)


def _build_exports(
    plan: _Plan,
    context: StoreContext,
    cell: StoreCell,
    handles: list[ExternHandle],
    kept: tuple[object, ...],
) -> Exports:
    items: dict[str, object] = {}
    # Where functions never come out of wasm as values (no reference values: no tables, globals
    # or results of funcref), an exported function is only ever reached through its exports:
    # the context's identity table (a weak dictionary, the dearest part of an export) would
    # only be written, never read.
    register = context.features.reference_values
    for (name, kind, t, position, alias), handle in zip(plan.exports, handles, strict=True):
        if alias is not None:
            items[name] = items[alias]  # several exports of one entity are one object
            continue
        if position >= 0:
            obj = kept[position]
            # An export of an imported entity is the very object that was imported (JS
            # identity); an imported Python callable is exported as the Function that wraps it
            # (below), an imported exported function, memory, table, global or tag as itself.
            if not isinstance(t, FuncType) or isinstance(obj, Function):
                items[name] = obj
                continue
        if isinstance(t, FuncType):
            assert isinstance(handle, FuncHandle)
            if register:
                items[name] = context.function_for_handle(handle, cell, t)
            else:
                items[name] = from_handle(Function, context, cell, handle, t)
        elif isinstance(t, TagType):
            assert isinstance(handle, TagHandle)
            items[name] = context.tag_for_handle(handle, cell, t)
        else:
            items[name] = from_handle(_PUBLIC_CLASS[kind], context, cell, handle, t)
    return Exports(items)
