"""``asyncwasm.WASI`` running a C program built here (tests/wasi/wasitest.c, compiled with the
``ziglang`` package), on every engine under test: arguments, environment, standard streams,
files in preopened directories, directory listings, clocks, random, exit codes, sleeps, and the
sandbox (``..``, absolute paths, symlinks pointing out, symlink chains)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import WASI, Instance, Module, ReadOnlyDir

sys.path.insert(0, str(Path(__file__).parent / "wasi"))
import build

ENOENT, EROFS, ENOTCAPABLE = 44, 69, 76  # WASI errno values (wasi-libc's errno uses them too)


@pytest.fixture(scope="session")
def wasitest_wasm() -> bytes:
    if not build.zig_available():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("the ziglang package (test extra) is needed to build the WASI tests")
        pytest.skip("the ziglang package is not installed")
    return build.build(Path(__file__).parent / "wasi" / "wasitest.c").read_bytes()


Run = Callable[..., tuple[int, bytes, bytes]]


@pytest.fixture
def run(runtime: asyncwasm.Runtime, wasitest_wasm: bytes) -> Run:
    """Run wasitest with ``args`` (after argv[0]); returns (exit code, stdout, stderr)."""
    module = Module(wasitest_wasm)

    def run(*args: str, **options: object) -> tuple[int, bytes, bytes]:
        out, err = io.BytesIO(), io.BytesIO()
        options.setdefault("stdout", out)
        options.setdefault("stderr", err)
        wasi = WASI(args=["wasitest", *args], **options)  # type: ignore[arg-type]
        code = wasi.start(Instance(module, wasi.get_import_object()))
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """``tmp_path/sandbox`` (preopened as /sandbox) with a file and a subdirectory, next to a
    file the guest must never read (``tmp_path/secret``)."""
    box = tmp_path / "sandbox"
    (box / "sub").mkdir(parents=True)
    (box / "hello.txt").write_bytes(b"hello from the host\n")
    (box / "sub" / "b.txt").write_bytes(b"b")
    (tmp_path / "secret").write_bytes(b"SECRET")
    return box


def test_args(run: Run) -> None:
    code, out, _ = run("args", "two words", "ünï")
    assert code == 0
    assert out.decode().splitlines() == ["wasitest", "args", "two words", "ünï"]


def test_env(run: Run) -> None:
    _, out, _ = run("env", env={"B": "2", "A": "x=y"})
    assert out.decode().splitlines() == ["A=x=y", "B=2"]


def test_no_env_by_default(run: Run) -> None:
    # As in node:wasi, the host environment is not passed on unless asked for.
    assert run("env")[1] == b""


@pytest.mark.parametrize("kind", ["bytes", "bytesio", "file"])
def test_stdin(run: Run, tmp_path: Path, kind: str) -> None:
    data = b"line one\nline two\n" * 1000
    if kind == "bytes":
        source: object = data
    elif kind == "bytesio":
        source = io.BytesIO(data)
    else:
        (tmp_path / "in").write_bytes(data)
        source = (tmp_path / "in").open("rb")
    try:
        code, out, _ = run("cat", stdin=source)
    finally:
        if kind == "file":
            source.close()  # type: ignore[attr-defined]
    assert (code, out) == (0, data)


def test_stdout_callable_and_stderr(run: Run) -> None:
    chunks: list[bytes] = []
    code, _, err = run("nonsense", stdout=chunks.append)
    assert code == 2
    assert b"unknown command nonsense" in err
    code, _, _ = run("args", stdout=chunks.append)
    assert b"".join(chunks) == b"wasitest\nargs\n"


def test_stdout_none_is_the_interpreters(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(captured))
    run("args", stdout=None)
    assert captured.getvalue() == b"wasitest\nargs\n"


def test_files_in_a_preopen(run: Run, sandbox: Path) -> None:
    pre = {"/sandbox": str(sandbox)}
    code, out, _ = run("cat", "/sandbox/hello.txt", "/sandbox/sub/../sub/b.txt", preopens=pre)
    assert (code, out) == (0, b"hello from the host\nb")
    code, out, _ = run("write", "/sandbox/new.txt", "written by wasm", preopens=pre)
    assert (code, out) == (0, b"wrote 15\n")
    assert (sandbox / "new.txt").read_bytes() == b"written by wasm"
    assert run("stat", "/sandbox/new.txt", preopens=pre)[1] == b"size=15 dir=0\n"
    assert run("mkdir", "/sandbox/made", preopens=pre)[1] == b"ok\n"
    assert (sandbox / "made").is_dir()
    assert run("rm", "/sandbox/new.txt", preopens=pre)[1] == b"ok\n"
    assert not (sandbox / "new.txt").exists()


def test_directory_listing(run: Run, sandbox: Path) -> None:
    for i in range(100):  # more than one fd_readdir buffer
        (sandbox / "sub" / f"file{i:03}").write_bytes(b"")
    _, out, _ = run("ls", "/sandbox/sub", preopens={"/sandbox": str(sandbox)})
    assert out.decode().splitlines() == ["b.txt", *(f"file{i:03}" for i in range(100))]


def test_clocks(run: Run) -> None:
    code, out, _ = run("clock")
    assert code == 0
    assert out.startswith(b"ok ")


def test_random(run: Run) -> None:
    first, second = run("random")[1].strip(), run("random")[1].strip()
    assert len(first) == 64
    assert first != second


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code(run: Run, code: int) -> None:
    assert run("exit", str(code))[:2] == (code, b"exiting\n")


def test_return_on_exit_false_raises_system_exit(run: Run) -> None:
    with pytest.raises(SystemExit) as info:
        run("exit", "9", return_on_exit=False)
    assert info.value.code == 9
    assert run("args", return_on_exit=False)[0] == 0  # returning from main is no exit


def test_poll_oneoff_sleep(run: Run) -> None:
    assert run("sleep", "30")[1] == b"slept enough\n"


# -- the sandbox ------------------------------------------------------------------------------


def _errno(out: bytes) -> int:
    return int(out.decode().rsplit("errno=", 1)[1])


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/../secret",
        "/sandbox/sub/../../secret",
        "/sandbox/link_out",
        "/sandbox/chain1",
        "/sandbox/dir_out/secret",
        "/sandbox/abs_link",
    ],
)
def test_nothing_leaves_the_sandbox(run: Run, sandbox: Path, path: str) -> None:
    (sandbox / "link_out").symlink_to("../secret")
    (sandbox / "chain1").symlink_to("chain2")
    (sandbox / "chain2").symlink_to("sub/chain3")
    (sandbox / "sub" / "chain3").symlink_to("../../secret")
    (sandbox / "dir_out").symlink_to("..")
    (sandbox / "abs_link").symlink_to(sandbox.parent / "secret")
    code, out, _ = run("cat", path, preopens={"/sandbox": str(sandbox)})
    assert b"SECRET" not in out
    assert code == 1
    assert _errno(out) == ENOTCAPABLE


def _tree(root: Path) -> dict[str, tuple[bool, bytes, int]]:
    """Every path under ``root``: (is a directory, contents, mtime)."""
    return {
        str(p.relative_to(root)): (
            p.is_dir(),
            b"" if p.is_dir() else p.read_bytes(),
            p.lstat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
    }


def test_a_read_only_preopen_can_be_read(run: Run, sandbox: Path) -> None:
    pre = {"/ro": ReadOnlyDir(sandbox)}
    assert run("cat", "/ro/hello.txt", "/ro/sub/b.txt", preopens=pre) == (
        0,
        b"hello from the host\nb",
        b"",
    )
    assert run("ls", "/ro", preopens=pre)[1] == b"hello.txt\nsub\n"
    assert run("stat", "/ro/hello.txt", preopens=pre)[1] == b"size=20 dir=0\n"


@pytest.mark.parametrize(
    "args",
    [
        ("write", "/ro/new.txt", "x"),
        ("write", "/ro/hello.txt", "overwritten"),
        ("write", "/ro/sub/new.txt", "x"),
        ("writeat", "/ro/sub", "new.txt"),
        ("mkdir", "/ro/made"),
        ("rm", "/ro/hello.txt"),
        ("rmdir", "/ro/sub"),
        ("symlink", "hello.txt", "/ro/alias"),
        ("mv", "/ro/hello.txt", "/ro/renamed.txt"),
        ("mv", "/ro/hello.txt", "/rw/taken.txt"),
        ("mv", "/rw/mine.txt", "/ro/mine.txt"),
        ("link", "/ro/hello.txt", "/rw/writable-alias.txt"),
        ("link", "/rw/mine.txt", "/ro/mine.txt"),
        ("touch", "/ro/hello.txt"),
        ("futimes", "/ro/hello.txt"),
        ("truncate", "/ro/hello.txt"),
    ],
    ids=lambda args: "-".join(args[:2]),
)
def test_a_read_only_preopen_cannot_be_changed(
    run: Run, sandbox: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    rw = tmp_path / "rw"
    rw.mkdir()
    (rw / "mine.txt").write_bytes(b"mine")
    before, before_rw = _tree(sandbox), _tree(rw)
    code, out, _ = run(*args, preopens={"/ro": ReadOnlyDir(sandbox), "/rw": str(rw)})
    assert (code, _errno(out)) == (1, EROFS), out
    assert _tree(sandbox) == before
    assert _tree(rw) == before_rw


def test_read_only_is_per_preopen(run: Run, sandbox: Path, tmp_path: Path) -> None:
    rw = tmp_path / "rw"
    rw.mkdir()
    pre = {"/ro": ReadOnlyDir(sandbox), "/rw": str(rw)}
    assert run("write", "/rw/new.txt", "written", preopens=pre)[1] == b"wrote 7\n"
    assert run("link", "/rw/new.txt", "/rw/again.txt", preopens=pre)[1] == b"ok\n"
    assert (rw / "again.txt").read_bytes() == b"written"


def test_read_only_dir_value() -> None:
    ro = ReadOnlyDir(Path("/data"))
    assert os.fspath(ro) == "/data"
    assert ro == ReadOnlyDir("/data")
    assert repr(ro) == "ReadOnlyDir('/data')"
    with pytest.raises(TypeError):
        ReadOnlyDir(b"/data")  # type: ignore[arg-type]


def test_absolute_path_outside_every_preopen(run: Run, sandbox: Path) -> None:
    code, out, _ = run("cat", str(sandbox.parent / "secret"), preopens={"/sandbox": str(sandbox)})
    assert code == 1
    assert b"SECRET" not in out
    assert _errno(out) in (ENOENT, ENOTCAPABLE)


def test_symlinks_inside_the_sandbox_are_followed(run: Run, sandbox: Path) -> None:
    (sandbox / "sub" / "up").symlink_to("../hello.txt")
    (sandbox / "alias").symlink_to("sub")
    code, out, _ = run(
        "cat", "/sandbox/sub/up", "/sandbox/alias/b.txt", preopens={"/sandbox": str(sandbox)}
    )
    assert (code, out) == (0, b"hello from the host\nb")


def test_a_symlink_loop_is_eloop(run: Run, sandbox: Path) -> None:
    (sandbox / "loop").symlink_to("loop")
    code, out, _ = run("cat", "/sandbox/loop", preopens={"/sandbox": str(sandbox)})
    assert (code, _errno(out)) == (1, 32)


def test_a_guest_made_symlink_pointing_out_is_not_followed(run: Run, sandbox: Path) -> None:
    pre = {"/sandbox": str(sandbox)}
    run("symlink", "../secret", "/sandbox/mine", preopens=pre)
    code, out, _ = run("cat", "/sandbox/mine", preopens=pre)
    assert code == 1
    assert _errno(out) == ENOTCAPABLE


# -- Node's errors ----------------------------------------------------------------------------

COMMAND = wat('(module (memory (export "memory") 1) (func (export "_start")))')
NO_MEMORY = wat('(module (func (export "_start")))')
NO_START = wat('(module (memory (export "memory") 1))')
REACTOR = wat(
    '(module (memory (export "memory") 1) (global $g (mut i32) (i32.const 0))'
    ' (func (export "_initialize") (global.set $g (i32.const 1)))'
    ' (func (export "ready") (result i32) global.get $g))'
)


def test_start_twice_is_an_error(runtime: asyncwasm.Runtime) -> None:
    wasi = WASI()
    instance = Instance(Module(COMMAND), wasi.get_import_object())
    assert wasi.start(instance) == 0
    with pytest.raises(RuntimeError, match="already started"):
        wasi.start(instance)


@pytest.mark.parametrize(
    ("source", "message"), [(NO_MEMORY, "memory"), (NO_START, "_start"), (REACTOR, "_initialize")]
)
def test_start_needs_memory_and_start(
    runtime: asyncwasm.Runtime, source: bytes, message: str
) -> None:
    wasi = WASI()
    with pytest.raises(TypeError, match=message):
        wasi.start(Instance(Module(source)))


def test_initialize_a_reactor(runtime: asyncwasm.Runtime) -> None:
    wasi = WASI()
    instance = Instance(Module(REACTOR))
    wasi.initialize(instance)
    assert instance.exports.ready() == 1
    with pytest.raises(TypeError, match="_start"):
        WASI().initialize(Instance(Module(COMMAND)))


def test_bad_options() -> None:
    with pytest.raises(TypeError, match="version"):
        WASI(version="preview2")
    with pytest.raises(TypeError, match="stdin"):
        WASI(stdin=42)
    with pytest.raises(TypeError, match="stdout"):
        WASI(stdout=42)
    with pytest.raises(TypeError, match="args"):
        WASI(args="not a list")


def test_the_import_object(runtime: asyncwasm.Runtime) -> None:
    wasi = WASI()
    imports = wasi.get_import_object()
    assert list(imports) == ["wasi_snapshot_preview1"]
    assert imports["wasi_snapshot_preview1"] is wasi.wasi_import is wasi.wasiImport
    assert wasi.getImportObject() == imports
    assert len(wasi.wasi_import) == 46
