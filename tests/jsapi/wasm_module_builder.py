"""A small WebAssembly binary-module builder for the JS API test ports.

It plays the part ``wasm-module-builder.js`` plays for the upstream tests (WebAssembly/spec,
``test/js-api``): tests describe a module in terms of indices and raw instruction bytes, and
:meth:`WasmModuleBuilder.to_buffer` lays out the binary. Nothing is validated on purpose, so a
test can produce a module that is malformed or invalid in exactly the way it wants. Pure Python:
no engine is imported.

Names follow the JS helper in snake_case (``addFunction`` -> ``add_function``); constants keep
their upstream spelling (``kWasmI32``, ``kExprEnd``, ``kSig_v_v``) so a JS test and its port read
alike. Value types are plain ints as upstream: number types are their byte (``0x7f``), abstract
reference types are negative (``kWasmFuncRef == -0x10``, emitted as ``0x70``), and
:func:`wasm_ref_type` / :func:`wasm_ref_null_type` build ``(ref ...)`` / ``(ref null ...)``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from _leb128 import sleb128, uleb128

# --- header -------------------------------------------------------------------------------------
kWasmH0, kWasmH1, kWasmH2, kWasmH3 = 0x00, 0x61, 0x73, 0x6D
kWasmV0, kWasmV1, kWasmV2, kWasmV3 = 0x01, 0x00, 0x00, 0x00
kHeaderSize = 8
kPageSize = 65536
kSpecMaxPages = 65536

# --- section codes ------------------------------------------------------------------------------
kUnknownSectionCode = 0
kTypeSectionCode = 1
kImportSectionCode = 2
kFunctionSectionCode = 3
kTableSectionCode = 4
kMemorySectionCode = 5
kGlobalSectionCode = 6
kExportSectionCode = 7
kStartSectionCode = 8
kElementSectionCode = 9
kCodeSectionCode = 10
kDataSectionCode = 11
kDataCountSectionCode = 12
kTagSectionCode = 13

# --- type forms and value types -----------------------------------------------------------------
kWasmFunctionTypeForm = 0x60
kWasmStructTypeForm = 0x5F
kWasmArrayTypeForm = 0x5E
kWasmSubtypeForm = 0x50
kWasmSubtypeFinalForm = 0x4F
kWasmRecursiveTypeGroupForm = 0x4E
kNoSuperType = 0xFFFFFFFF

kWasmVoid = 0x40
kWasmI32 = 0x7F
kWasmI64 = 0x7E
kWasmF32 = 0x7D
kWasmF64 = 0x7C
kWasmS128 = 0x7B
kWasmI8 = 0x78
kWasmI16 = 0x77

kWasmNullExnRef = -0x0C
kWasmNullFuncRef = -0x0D
kWasmNullExternRef = -0x0E
kWasmNullRef = -0x0F
kWasmFuncRef = -0x10
kWasmAnyFunc = kWasmFuncRef  # the JS API's name for funcref
kWasmExternRef = -0x11
kWasmAnyRef = -0x12
kWasmEqRef = -0x13
kWasmI31Ref = -0x14
kWasmStructRef = -0x15
kWasmArrayRef = -0x16
kWasmExnRef = -0x17

kLeb128Mask = 0x7F
kFuncRefCode = kWasmFuncRef & kLeb128Mask
kAnyFuncCode = kFuncRefCode
kExternRefCode = kWasmExternRef & kLeb128Mask
kExnRefCode = kWasmExnRef & kLeb128Mask
kAnyRefCode = kWasmAnyRef & kLeb128Mask
kEqRefCode = kWasmEqRef & kLeb128Mask
kI31RefCode = kWasmI31Ref & kLeb128Mask
kNullExternRefCode = kWasmNullExternRef & kLeb128Mask
kNullFuncRefCode = kWasmNullFuncRef & kLeb128Mask
kStructRefCode = kWasmStructRef & kLeb128Mask
kArrayRefCode = kWasmArrayRef & kLeb128Mask
kNullRefCode = kWasmNullRef & kLeb128Mask

kWasmRefNull = 0x63
kWasmRef = 0x64

# --- external kinds -----------------------------------------------------------------------------
kExternalFunction = 0
kExternalTable = 1
kExternalMemory = 2
kExternalGlobal = 3
kExternalTag = 4

kExceptionAttribute = 0

# --- limits flags and element/data segment flags ------------------------------------------------
kHasMaximumFlag = 1
kSharedHasMaximumFlag = 3
kActiveNoIndex = 0
kPassive = 1
kActiveWithIndex = 2
kPassiveWithElements = 5

# --- try_table catch clause kinds ---------------------------------------------------------------
kCatchNoRef = 0x0
kCatchRef = 0x1
kCatchAllNoRef = 0x2
kCatchAllRef = 0x3

# --- opcodes ------------------------------------------------------------------------------------
kExprUnreachable = 0x00
kExprNop = 0x01
kExprBlock = 0x02
kExprLoop = 0x03
kExprIf = 0x04
kExprElse = 0x05
kExprTry = 0x06
kExprCatch = 0x07
kExprThrow = 0x08
kExprRethrow = 0x09
kExprThrowRef = 0x0A
kExprEnd = 0x0B
kExprBr = 0x0C
kExprBrIf = 0x0D
kExprBrTable = 0x0E
kExprReturn = 0x0F
kExprCallFunction = 0x10
kExprCallIndirect = 0x11
kExprReturnCall = 0x12
kExprReturnCallIndirect = 0x13
kExprCatchAll = 0x19
kExprDrop = 0x1A
kExprSelect = 0x1B
kExprTryTable = 0x1F
kExprLocalGet = 0x20
kExprLocalSet = 0x21
kExprLocalTee = 0x22
kExprGlobalGet = 0x23
kExprGlobalSet = 0x24
kExprTableGet = 0x25
kExprTableSet = 0x26
kExprI32LoadMem = 0x28
kExprI64LoadMem = 0x29
kExprF32LoadMem = 0x2A
kExprF64LoadMem = 0x2B
kExprI32StoreMem = 0x36
kExprI64StoreMem = 0x37
kExprF32StoreMem = 0x38
kExprF64StoreMem = 0x39
kExprMemorySize = 0x3F
kExprMemoryGrow = 0x40
kExprI32Const = 0x41
kExprI64Const = 0x42
kExprF32Const = 0x43
kExprF64Const = 0x44
kExprI32Eqz = 0x45
kExprI32Eq = 0x46
kExprI32Ne = 0x47
kExprI32Add = 0x6A
kExprI32Sub = 0x6B
kExprI32Mul = 0x6C
kExprI32DivS = 0x6D
kExprI32DivU = 0x6E
kExprI64Add = 0x7C
kExprI64Sub = 0x7D
kExprI64Mul = 0x7E
kExprF32Add = 0x92
kExprF64Add = 0xA0
kExprRefNull = 0xD0
kExprRefIsNull = 0xD1
kExprRefFunc = 0xD2

kGCPrefix = 0xFB
kNumericPrefix = 0xFC
kSimdPrefix = 0xFD
kExprStructNew = 0x00
kExprArrayNew = 0x06
kExprRefTest = 0x14
kExprRefCast = 0x16
kExprRefI31 = 0x1C
kExprI31GetS = 0x1D
kExprI31GetU = 0x1E
kExprTableGrow = 0x0F  # after kNumericPrefix
kExprTableSize = 0x10  # after kNumericPrefix
kExprS128Const = 0x0C  # after kSimdPrefix


# --- types --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefType:
    """``(ref heap_type)`` or ``(ref null heap_type)``; ``heap_type`` is a type index or an
    abstract heap type (one of the negative ``kWasm...Ref`` constants)."""

    opcode: int
    heap_type: int


ValueType = int | RefType


def wasm_ref_type(heap_type: int) -> RefType:
    return RefType(kWasmRef, heap_type)


def wasm_ref_null_type(heap_type: int) -> RefType:
    return RefType(kWasmRefNull, heap_type)


@dataclass(frozen=True)
class Sig:
    """A function type: parameter and result value types."""

    params: tuple[ValueType, ...]
    results: tuple[ValueType, ...]


def make_sig(params: Iterable[ValueType], results: Iterable[ValueType]) -> Sig:
    return Sig(tuple(params), tuple(results))


kSig_i_i = make_sig([kWasmI32], [kWasmI32])
kSig_l_l = make_sig([kWasmI64], [kWasmI64])
kSig_i_l = make_sig([kWasmI64], [kWasmI32])
kSig_i_ii = make_sig([kWasmI32, kWasmI32], [kWasmI32])
kSig_i_iii = make_sig([kWasmI32, kWasmI32, kWasmI32], [kWasmI32])
kSig_f_ff = make_sig([kWasmF32, kWasmF32], [kWasmF32])
kSig_d_dd = make_sig([kWasmF64, kWasmF64], [kWasmF64])
kSig_l_ll = make_sig([kWasmI64, kWasmI64], [kWasmI64])
kSig_v_v = make_sig([], [])
kSig_i_v = make_sig([], [kWasmI32])
kSig_l_v = make_sig([], [kWasmI64])
kSig_f_v = make_sig([], [kWasmF32])
kSig_d_v = make_sig([], [kWasmF64])
kSig_v_i = make_sig([kWasmI32], [])
kSig_v_ii = make_sig([kWasmI32, kWasmI32], [])
kSig_v_l = make_sig([kWasmI64], [])
kSig_v_f = make_sig([kWasmF32], [])
kSig_v_d = make_sig([kWasmF64], [])
kSig_f_f = make_sig([kWasmF32], [kWasmF32])
kSig_d_d = make_sig([kWasmF64], [kWasmF64])
kSig_ii_v = make_sig([], [kWasmI32, kWasmI32])
kSig_r_r = make_sig([kWasmExternRef], [kWasmExternRef])
kSig_a_a = make_sig([kWasmAnyFunc], [kWasmAnyFunc])
kSig_i_r = make_sig([kWasmExternRef], [kWasmI32])
kSig_v_r = make_sig([kWasmExternRef], [])
kSig_v_a = make_sig([kWasmAnyFunc], [])
kSig_r_v = make_sig([], [kWasmExternRef])
kSig_a_v = make_sig([], [kWasmAnyFunc])
kSig_ie_v = make_sig([], [kWasmI32, kWasmExnRef])
kSig_re_v = make_sig([], [kWasmExternRef, kWasmExnRef])


# --- encoding helpers ---------------------------------------------------------------------------
def leb_u(value: int, max_len: int = 5) -> bytes:
    """Unsigned LEB128. ``value`` must fit in ``max_len`` bytes."""
    return uleb128(value, max_len)


def wasm_signed_leb(value: int, max_len: int = 5) -> list[int]:
    """Signed LEB128 as a list of byte values (for splicing into instruction lists)."""
    return list(sleb128(value, max_len))


def wasm_unsigned_leb(value: int, max_len: int = 5) -> list[int]:
    return list(uleb128(value, max_len))


def wasm_i32_const(value: int) -> list[int]:
    return [kExprI32Const, *wasm_signed_leb(value, 5)]


def wasm_i64_const(value: int) -> list[int]:
    return [kExprI64Const, *wasm_signed_leb(value, 10)]


def wasm_f32_const(value: float) -> list[int]:
    return [kExprF32Const, *struct.pack("<f", value)]


def wasm_f64_const(value: float) -> list[int]:
    return [kExprF64Const, *struct.pack("<d", value)]


def encode_name(name: str | bytes | Sequence[int]) -> bytes:
    """A length-prefixed name. ``str`` is UTF-8 encoded; bytes or int lists go in raw, so a test
    can emit a deliberately malformed name."""
    raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    return leb_u(len(raw)) + raw


def encode_value_type(value_type: ValueType) -> bytes:
    if isinstance(value_type, RefType):
        return bytes([value_type.opcode]) + bytes(wasm_signed_leb(value_type.heap_type, 5))
    return bytes([value_type & kLeb128Mask if value_type < 0 else value_type])


def section(code: int, payload: bytes) -> bytes:
    return bytes([code]) + leb_u(len(payload)) + payload


def _vec(items: Sequence[bytes]) -> bytes:
    return leb_u(len(items)) + b"".join(items)


def _limits(initial: int, maximum: int | None, shared: bool | None = None) -> bytes:
    flags = (0 if maximum is None else kHasMaximumFlag) | (2 if shared else 0)
    return bytes([flags]) + leb_u(initial) + (b"" if maximum is None else leb_u(maximum))


def _check_bytes(body: Iterable[int]) -> list[int]:
    out = list(body)
    for b in out:
        if not isinstance(b, int) or not 0 <= b <= 0xFF:
            raise ValueError(f"instruction bytes must be 8-bit ints, got {b!r}")
    return out


# --- builders for module items ------------------------------------------------------------------
@dataclass
class WasmFunctionBuilder:
    module: WasmModuleBuilder
    name: str | None
    type_index: int
    index: int
    body: list[int] = field(default_factory=list)
    locals: list[tuple[int, ValueType]] = field(default_factory=list)

    def add_body(self, body: Iterable[int]) -> WasmFunctionBuilder:
        """Set the instructions; the final ``end`` is appended for you."""
        self.body = [*_check_bytes(body), kExprEnd]
        return self

    def add_body_with_end(self, body: Iterable[int]) -> WasmFunctionBuilder:
        """Set the instructions verbatim (no ``end`` appended)."""
        self.body = _check_bytes(body)
        return self

    def add_locals(
        self,
        *,
        i32_count: int = 0,
        i64_count: int = 0,
        f32_count: int = 0,
        f64_count: int = 0,
        s128_count: int = 0,
        externref_count: int = 0,
        anyfunc_count: int = 0,
    ) -> WasmFunctionBuilder:
        for count, value_type in (
            (i32_count, kWasmI32),
            (i64_count, kWasmI64),
            (f32_count, kWasmF32),
            (f64_count, kWasmF64),
            (s128_count, kWasmS128),
            (externref_count, kWasmExternRef),
            (anyfunc_count, kWasmAnyFunc),
        ):
            if count:
                self.locals.append((count, value_type))
        return self

    def export_as(self, name: str) -> WasmFunctionBuilder:
        self.module.add_export(name, self.index)
        return self

    def export_func(self) -> WasmFunctionBuilder:
        if self.name is None:
            raise ValueError("export_func() needs a named function")
        return self.export_as(self.name)

    def end(self) -> WasmModuleBuilder:
        return self.module


@dataclass
class WasmGlobalBuilder:
    module: WasmModuleBuilder
    type: ValueType
    mutable: bool
    init: list[int]
    index: int

    def export_as(self, name: str) -> WasmGlobalBuilder:
        self.module.add_export_of_kind(name, kExternalGlobal, self.index)
        return self


@dataclass
class WasmTableBuilder:
    module: WasmModuleBuilder
    type: ValueType
    initial_size: int
    max_size: int | None
    init_expr: list[int] | None
    index: int

    def export_as(self, name: str) -> WasmTableBuilder:
        self.module.add_export_of_kind(name, kExternalTable, self.index)
        return self


@dataclass
class _Import:
    module: str | bytes
    name: str | bytes
    kind: int
    payload: bytes


def default_init_for(value_type: ValueType) -> list[int]:
    """The constant expression a global of this type gets when none is given."""
    if value_type == kWasmI32:
        return wasm_i32_const(0)
    if value_type == kWasmI64:
        return wasm_i64_const(0)
    if value_type == kWasmF32:
        return wasm_f32_const(0.0)
    if value_type == kWasmF64:
        return wasm_f64_const(0.0)
    if value_type == kWasmS128:
        return [kSimdPrefix, kExprS128Const, *([0] * 16)]
    if isinstance(value_type, RefType):
        if value_type.opcode != kWasmRefNull:
            raise ValueError("non-defaultable type")
        return [kExprRefNull, *wasm_signed_leb(value_type.heap_type)]
    return [kExprRefNull, *wasm_signed_leb(value_type)]


class WasmModuleBuilder:
    """Accumulates module items and serialises them with :meth:`to_buffer`.

    Indices work as in the binary format: imported functions/globals/tables/tags come first, so
    (as upstream) imports of a kind must be added before local definitions of that kind.
    """

    def __init__(self) -> None:
        self.types: list[Sig | bytes] = []
        self.imports: list[_Import] = []
        self.exports: list[tuple[str | bytes, int, int]] = []
        self.globals: list[WasmGlobalBuilder] = []
        self.tables: list[WasmTableBuilder] = []
        self.tags: list[int] = []
        self.functions: list[WasmFunctionBuilder] = []
        self.element_segments: list[bytes] = []
        self.data_segments: list[tuple[bool, bytes]] = []
        self.explicit: list[bytes] = []
        self.memory: tuple[int, int | None, bool, bool | None] | None = None
        self.start_index: int | None = None
        self.num_imported_funcs = 0
        self.num_imported_globals = 0
        self.num_imported_tables = 0
        self.num_imported_tags = 0
        self.num_imported_memories = 0
        self.emit_names = True

    # types
    def add_type(self, sig: Sig | tuple[Iterable[ValueType], Iterable[ValueType]]) -> int:
        if not isinstance(sig, Sig):
            sig = make_sig(*sig)
        self.types.append(sig)
        return len(self.types) - 1

    def add_raw_type(self, encoded: bytes) -> int:
        """A type-section entry given as raw bytes (e.g. a struct or array type)."""
        self.types.append(bytes(encoded))
        return len(self.types) - 1

    def next_type_index(self) -> int:
        return len(self.types)

    def _type_index(self, type_: int | Sig) -> int:
        return type_ if isinstance(type_, int) else self.add_type(type_)

    # functions
    def add_function(self, name: str | None, type_: int | Sig) -> WasmFunctionBuilder:
        func = WasmFunctionBuilder(
            self, name, self._type_index(type_), len(self.functions) + self.num_imported_funcs
        )
        self.functions.append(func)
        return func

    def add_start(self, index: int) -> WasmModuleBuilder:
        self.start_index = index
        return self

    # imports
    def add_import(self, module: str | bytes, name: str | bytes, type_: int | Sig) -> int:
        if self.functions:
            raise ValueError("imported functions must be declared before local ones")
        type_index = self._type_index(type_)
        self.imports.append(_Import(module, name, kExternalFunction, leb_u(type_index)))
        self.num_imported_funcs += 1
        return self.num_imported_funcs - 1

    def add_imported_global(
        self, module: str | bytes, name: str | bytes, type_: ValueType, mutable: bool = False
    ) -> int:
        if self.globals:
            raise ValueError("imported globals must be declared before local ones")
        payload = encode_value_type(type_) + bytes([1 if mutable else 0])
        self.imports.append(_Import(module, name, kExternalGlobal, payload))
        self.num_imported_globals += 1
        return self.num_imported_globals - 1

    def add_imported_memory(
        self,
        module: str | bytes,
        name: str | bytes,
        initial: int = 0,
        maximum: int | None = None,
        shared: bool | None = None,
    ) -> WasmModuleBuilder:
        payload = _limits(initial, maximum, shared)
        self.imports.append(_Import(module, name, kExternalMemory, payload))
        self.num_imported_memories += 1
        return self

    def add_imported_table(
        self,
        module: str | bytes,
        name: str | bytes,
        initial: int,
        maximum: int | None = None,
        type_: ValueType = kWasmAnyFunc,
    ) -> int:
        if self.tables:
            raise ValueError("imported tables must be declared before local ones")
        payload = encode_value_type(type_) + _limits(initial, maximum)
        self.imports.append(_Import(module, name, kExternalTable, payload))
        self.num_imported_tables += 1
        return self.num_imported_tables - 1

    def add_imported_tag(self, module: str | bytes, name: str | bytes, type_: int | Sig) -> int:
        if self.tags:
            raise ValueError("imported tags must be declared before local ones")
        payload = leb_u(kExceptionAttribute) + leb_u(self._type_index(type_))
        self.imports.append(_Import(module, name, kExternalTag, payload))
        self.num_imported_tags += 1
        return self.num_imported_tags - 1

    # definitions
    def add_memory(
        self,
        minimum: int,
        maximum: int | None = None,
        exported: bool = False,
        shared: bool | None = None,
    ) -> WasmModuleBuilder:
        """One memory; with ``exported`` it is exported as ``"memory"`` (as upstream)."""
        self.memory = (minimum, maximum, exported, shared)
        return self

    def add_global(
        self, type_: ValueType, mutable: bool, init: Iterable[int] | None = None
    ) -> WasmGlobalBuilder:
        expr = default_init_for(type_) if init is None else _check_bytes(init)
        glob = WasmGlobalBuilder(
            self, type_, mutable, expr, len(self.globals) + self.num_imported_globals
        )
        self.globals.append(glob)
        return glob

    def add_table(
        self,
        type_: ValueType,
        initial_size: int,
        max_size: int | None = None,
        init_expr: Iterable[int] | None = None,
    ) -> WasmTableBuilder:
        table = WasmTableBuilder(
            self,
            type_,
            initial_size,
            max_size,
            None if init_expr is None else _check_bytes(init_expr),
            len(self.tables) + self.num_imported_tables,
        )
        self.tables.append(table)
        return table

    def set_table_bounds(self, minimum: int, maximum: int | None = None) -> WasmModuleBuilder:
        if self.tables:
            raise ValueError("the bounds of table 0 are already set")
        self.add_table(kWasmAnyFunc, minimum, maximum)
        return self

    def add_tag(self, type_: int | Sig) -> int:
        self.tags.append(self._type_index(type_))
        return len(self.tags) - 1 + self.num_imported_tags

    # exports
    def add_export(self, name: str | bytes, index: int) -> WasmModuleBuilder:
        return self.add_export_of_kind(name, kExternalFunction, index)

    def add_export_of_kind(self, name: str | bytes, kind: int, index: int) -> WasmModuleBuilder:
        self.exports.append((name, kind, index))
        return self

    def export_memory_as(self, name: str | bytes) -> WasmModuleBuilder:
        return self.add_export_of_kind(name, kExternalMemory, 0)

    # segments
    def add_element_segment(
        self, table: int, base: int, is_global: bool, functions: Sequence[int]
    ) -> WasmModuleBuilder:
        """An active segment of function indices at offset ``base`` (a constant, or with
        ``is_global`` the index of an imported global holding the offset)."""
        offset = bytes([kExprGlobalGet if is_global else kExprI32Const])
        offset += leb_u(base) if is_global else bytes(wasm_signed_leb(base))
        offset += bytes([kExprEnd])
        entries = _vec([leb_u(i) for i in functions])
        if table == 0:
            self.element_segments.append(leb_u(kActiveNoIndex) + offset + entries)
        else:
            self.element_segments.append(
                leb_u(kActiveWithIndex)
                + leb_u(table)
                + offset
                + bytes([kExternalFunction])
                + entries
            )
        return self

    def add_data_segment(
        self, address: int, data: bytes | Sequence[int], is_global: bool = False
    ) -> int:
        offset = (
            bytes([kExprGlobalGet]) + leb_u(address)
            if is_global
            else bytes(wasm_i32_const(address))
        )
        self.data_segments.append(
            (True, b"\x00" + offset + bytes([kExprEnd]) + encode_name(bytes(data)))
        )
        return len(self.data_segments) - 1

    def add_passive_data_segment(self, data: bytes | Sequence[int]) -> int:
        self.data_segments.append((False, bytes([kPassive]) + encode_name(bytes(data))))
        return len(self.data_segments) - 1

    # custom and raw sections
    def add_custom_section(
        self, name: str | bytes, payload: bytes | Sequence[int]
    ) -> WasmModuleBuilder:
        """A custom section, appended after all other sections, in call order."""
        self.explicit.append(section(kUnknownSectionCode, encode_name(name) + bytes(payload)))
        return self

    def add_explicit_section(self, raw: bytes | Sequence[int]) -> WasmModuleBuilder:
        """Raw bytes appended verbatim after the standard sections (may be malformed)."""
        self.explicit.append(bytes(raw))
        return self

    # serialisation
    def _type_section(self) -> bytes:
        entries = []
        for t in self.types:
            if isinstance(t, bytes):
                entries.append(t)
            else:
                entries.append(
                    bytes([kWasmFunctionTypeForm])
                    + _vec([encode_value_type(p) for p in t.params])
                    + _vec([encode_value_type(r) for r in t.results])
                )
        return _vec(entries)

    def _import_section(self) -> bytes:
        return _vec(
            [
                encode_name(i.module) + encode_name(i.name) + bytes([i.kind]) + i.payload
                for i in self.imports
            ]
        )

    def _code_entry(self, func: WasmFunctionBuilder) -> bytes:
        body = _vec([leb_u(count) + encode_value_type(t) for count, t in func.locals]) + bytes(
            func.body
        )
        return leb_u(len(body)) + body

    def _name_section(self) -> bytes | None:
        named = [f for f in self.functions if f.name is not None]
        if not named or not self.emit_names:
            return None
        func_names = _vec([leb_u(f.index) + encode_name(f.name or "") for f in named])
        return section(kUnknownSectionCode, encode_name("name") + section(1, func_names))

    def to_buffer(self) -> bytes:
        out = bytearray(
            bytes([kWasmH0, kWasmH1, kWasmH2, kWasmH3, kWasmV0, kWasmV1, kWasmV2, kWasmV3])
        )
        if self.types:
            out += section(kTypeSectionCode, self._type_section())
        if self.imports:
            out += section(kImportSectionCode, self._import_section())
        if self.functions:
            out += section(
                kFunctionSectionCode, _vec([leb_u(f.type_index) for f in self.functions])
            )
        if self.tables:
            entries = []
            for t in self.tables:
                entry = b""
                if t.init_expr is not None:
                    entry += b"\x40\x00"
                entry += encode_value_type(t.type) + _limits(t.initial_size, t.max_size)
                if t.init_expr is not None:
                    entry += bytes(t.init_expr) + bytes([kExprEnd])
                entries.append(entry)
            out += section(kTableSectionCode, _vec(entries))
        if self.memory is not None:
            minimum, maximum, _, shared = self.memory
            out += section(kMemorySectionCode, b"\x01" + _limits(minimum, maximum, shared))
        if self.tags:
            out += section(
                kTagSectionCode, _vec([leb_u(kExceptionAttribute) + leb_u(t) for t in self.tags])
            )
        if self.globals:
            out += section(
                kGlobalSectionCode,
                _vec(
                    [
                        encode_value_type(g.type)
                        + bytes([1 if g.mutable else 0])
                        + bytes(g.init)
                        + bytes([kExprEnd])
                        for g in self.globals
                    ]
                ),
            )
        exports = [encode_name(n) + bytes([k]) + leb_u(i) for n, k, i in self.exports]
        if self.memory is not None and self.memory[2]:
            exports.append(encode_name("memory") + bytes([kExternalMemory]) + leb_u(0))
        if exports:
            out += section(kExportSectionCode, _vec(exports))
        if self.start_index is not None:
            out += section(kStartSectionCode, leb_u(self.start_index))
        if self.element_segments:
            out += section(kElementSectionCode, _vec(self.element_segments))
        if any(not active for active, _ in self.data_segments):
            out += section(kDataCountSectionCode, leb_u(len(self.data_segments)))
        if self.functions:
            out += section(kCodeSectionCode, _vec([self._code_entry(f) for f in self.functions]))
        if self.data_segments:
            out += section(kDataSectionCode, _vec([seg for _, seg in self.data_segments]))
        for raw in self.explicit:
            out += raw
        names = self._name_section()
        if names is not None:
            out += names
        return bytes(out)


EMPTY_MODULE = WasmModuleBuilder().to_buffer()
"""``\\0asm`` and version 1: the smallest valid module."""

INVALID_MODULE = EMPTY_MODULE + b"\x00\x00"
"""The empty module followed by a truncated custom section (upstream's "invalid code")."""
