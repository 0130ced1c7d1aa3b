"""BufferSource handling: what counts as bytes of a module, copied at once."""

from __future__ import annotations

from typing import Final

from ._exceptions import CompileError

WASM_MAGIC: Final = b"\0asm"


def copy_buffer_source(source: object, what: str = "source") -> bytes:
    """Copy the bytes of a buffer-protocol object (JS BufferSource).

    The copy is taken now, so changing the buffer afterwards has no effect. ``str``, lists,
    numbers, ``None`` and other non-buffers raise ``TypeError``.
    """
    if isinstance(source, bytes):
        return source  # immutable already: no copy needed
    if isinstance(source, str):
        raise TypeError(f"{what} must be a bytes-like object (BufferSource), not str")
    try:
        view = memoryview(source)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{what} must be a bytes-like object (BufferSource), not {type(source).__name__}"
        ) from None
    with view:
        # tobytes() reads in C order whatever the view's shape and item size are.
        return view.tobytes()


def check_magic(wasm: bytes) -> None:
    """Refuse input that does not start with the binary magic.

    Both engines would otherwise parse it as the text format, which the JS API does not accept.
    """
    if wasm[:4] != WASM_MAGIC:
        if len(wasm) < 4 and WASM_MAGIC.startswith(wasm):
            raise CompileError(f"unexpected end of input: {len(wasm)} bytes", offset=len(wasm))
        raise CompileError("magic header not detected: expected b'\\0asm'", offset=0)
