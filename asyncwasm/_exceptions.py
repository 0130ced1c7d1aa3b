"""The exceptions asyncwasm raises.

Our exception hierarchy::

    Exception (Python's)
    ├── WebAssemblyError
    │   ├── CompileError ........ the bytes are not a valid module (malformed or invalid)
    │   ├── LinkError ........... instantiation: an import is missing or of the wrong kind/type
    │   ├── RuntimeError ........ a trap while running wasm; ``.trap`` names its kind
    │   ├── SuspendError ........ JSPI: a Suspending import reached outside a promising call
    │   └── NotSupportedError ... the selected engine cannot do this (also a NotImplementedError)
    ├── RuntimeError (Python's)
    │   ├── RuntimeClosedError .. the asyncwasm.Runtime was closed (compiling needs an open one)
    │   └── ForkedObjectError ... an object made before os.fork() used in the forked child
    ├── ValueError (Python's)
    │   └── RangeError .......... JS RangeError: grow past the maximum, bad sizes or indices
    └── TypeError (Python's) .... JS TypeError, raised as Python's own

``asyncwasm.Exception`` (a wasm exception carrying a tag and payload) lives in ``_tag.py``: it is a
value that wasm code throws, not an error asyncwasm reports.

An engine's own exception types never escape: the engine layer maps them to these classes, keeps
the engine's message and chains the original as ``__cause__``.
"""

from __future__ import annotations

import builtins
from typing import Any, Final, Literal, get_args

__all__ = [
    "CompileError",
    "ForkedObjectError",
    "LinkError",
    "NotSupportedError",
    "RangeError",
    "RuntimeClosedError",
    "RuntimeError",
    "SuspendError",
    "TrapKind",
    "WebAssemblyError",
]

# The trap kinds ``RuntimeError.trap`` can hold. Names follow the core spec's assert_trap
# messages, with spaces as underscores.
TrapKind = Literal[
    "unreachable",
    "integer_divide_by_zero",
    "integer_overflow",
    "invalid_conversion_to_integer",
    "out_of_bounds_memory_access",
    "out_of_bounds_table_access",
    "indirect_call_to_null",
    "indirect_call_type_mismatch",
    "stack_overflow",
    "out_of_fuel",
    "timeout",
    "interrupt",
    "null_reference",
    "unaligned_atomic",
    "uncaught_exception",
    "unknown",
]
TRAP_KINDS: Final[frozenset[TrapKind]] = frozenset(get_args(TrapKind))

# Engine messages can be huge (wasmer's stack overflow message lists every frame: 15 MB).
MAX_MESSAGE_CHARS = 2000


def shorten(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut an engine message down to ``limit`` characters, saying how much was dropped."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... [{len(message) - limit} more characters]"


class WebAssemblyError(Exception):
    """Base class of the errors the WebAssembly JS API defines."""


class CompileError(WebAssemblyError):
    """The bytes are not a valid WebAssembly module (malformed or failing validation).

    ``offset`` is the byte offset of the problem when it is known, else ``None``.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(shorten(message))
        self.offset = offset

    # Errors cross process boundaries (wasmer compiles in a worker process): keep the fields.
    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), {"offset": self.offset}))


class LinkError(WebAssemblyError):
    """Instantiation failed: an import is missing or has the wrong kind or type."""


class RuntimeError(WebAssemblyError):
    """A trap while running WebAssembly code.

    ``trap`` names its kind (see ``TRAP_KINDS``), e.g. ``"unreachable"`` or
    ``"integer_divide_by_zero"``; ``"unknown"`` when the engine did not say.
    """

    def __init__(self, message: str, *, trap: TrapKind = "unknown") -> None:
        super().__init__(shorten(message))
        self.trap: TrapKind = trap

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), {"trap": self.trap}))


class SuspendError(WebAssemblyError):
    """JS ``WebAssembly.SuspendError`` (JSPI): wasm called a ``Suspending`` import with no
    promising call directly below it (a plain call, or a host function in between), so there is
    nothing to suspend. The instance stays usable."""


class NotSupportedError(WebAssemblyError, NotImplementedError):
    """The selected engine cannot do this; the message names the engine and the capability."""

    def __init__(self, engine: str, capability: str) -> None:
        super().__init__(f"the {engine} engine does not support {capability}")
        self.engine = engine
        self.capability = capability

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.engine, self.capability))


class RuntimeClosedError(builtins.RuntimeError):
    """The ``asyncwasm.Runtime`` was closed: it compiles no more (objects already made keep
    working). Python's ``RuntimeError``, as for other closed resources; never a trap."""


class ForkedObjectError(builtins.RuntimeError):
    """An engine object made before this process was forked (``os.fork()``, multiprocessing's
    ``fork`` start method) was used in the child: an instance, function, memory, table, global,
    tag or module made in the parent belongs to the parent's engine state, which the child must
    not touch. Make new ones in the child; a ``Module`` travels by pickling it (or compile the
    bytes again). Python's ``RuntimeError``, like ``RuntimeClosedError``."""


class RangeError(ValueError):
    """JS ``RangeError``: a size, index or growth outside what is allowed."""


def _rebuild(cls: type[BaseException], message: str, fields: dict[str, Any]) -> BaseException:
    return cls(message, **fields)


# Python's own RuntimeError, for code in this package that needs it by an unambiguous name.
PythonRuntimeError = builtins.RuntimeError
