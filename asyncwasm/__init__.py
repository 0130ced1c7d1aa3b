"""asyncwasm: the WebAssembly JavaScript API for async Python.

``import asyncwasm`` plays the role of the JS global ``WebAssembly``::

    import asyncwasm

    async def main() -> None:
        module, instance = await asyncwasm.instantiate(wasm_bytes, {"env": {"log": print}})
        print(instance.exports.add(1, 2))

``asyncwasm.RuntimeError`` and ``asyncwasm.Exception`` keep their JS names; they are left out of
``__all__`` so that ``from asyncwasm import *`` does not shadow Python's built-ins.
"""

from . import _transfer  # noqa: F401  (registers pickle support for Module)
from .__version__ import __version__
from ._api import (
    compile,
    compile_streaming,
    compileStreaming,
    instantiate,
    instantiate_streaming,
    instantiateStreaming,
    validate,
)
from ._cache import CacheInfo
from ._engines import EngineFeatures
from ._exceptions import (
    CompileError,
    ForkedObjectError,
    LinkError,
    NotSupportedError,
    RangeError,
    RuntimeClosedError,
    SuspendError,
    TrapKind,
    WebAssemblyError,
)
from ._exceptions import (
    RuntimeError as RuntimeError,
)
from ._function import Function
from ._global import Global
from ._instance import Exports, Instance, InstantiatedSource
from ._jspi import Suspending, promising
from ._limits import Limits
from ._memory import Memory
from ._module import Module, ModuleExportDescriptor, ModuleImportDescriptor
from ._runtime import Runtime
from ._table import Table
from ._tag import Exception as Exception
from ._tag import Tag
from ._types import FuncType, GlobalType, MemoryType, TableType, TagType
from ._types import Limits as TypeLimits
from ._wasi import WASI, ReadOnlyDir

__all__ = [
    "WASI",
    "CacheInfo",
    "CompileError",
    "EngineFeatures",
    "Exports",
    "ForkedObjectError",
    "FuncType",
    "Function",
    "Global",
    "GlobalType",
    "Instance",
    "InstantiatedSource",
    "Limits",
    "LinkError",
    "Memory",
    "MemoryType",
    "Module",
    "ModuleExportDescriptor",
    "ModuleImportDescriptor",
    "NotSupportedError",
    "RangeError",
    "ReadOnlyDir",
    "Runtime",
    "RuntimeClosedError",
    "SuspendError",
    "Suspending",
    "Table",
    "TableType",
    "Tag",
    "TagType",
    "TrapKind",
    "TypeLimits",
    "WebAssemblyError",
    "__version__",
    "compile",
    "compileStreaming",
    "compile_streaming",
    "instantiate",
    "instantiateStreaming",
    "instantiate_streaming",
    "promising",
    "validate",
]

# The public classes say they come from the package, not from private modules.
for _name in (*__all__, "RuntimeError", "Exception"):
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__name__ == _name:  # not aliases (TypeLimits): pickle
        _obj.__module__ = __name__
del _name, _obj
