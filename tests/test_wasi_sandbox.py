"""The WASI path resolver (``asyncwasm._wasi._sandbox.resolve``) on its own: where each path
leads, and which ones are refused. No engine involved."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncwasm._wasi._constants import Errno, WasiError
from asyncwasm._wasi._sandbox import MAX_SYMLINKS, resolve


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    box = tmp_path / "box"
    (box / "a" / "b").mkdir(parents=True)
    (box / "a" / "b" / "f").write_text("f")
    (box / "top").write_text("top")
    (tmp_path / "outside").write_text("outside")
    fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield box, fd
    finally:
        os.close(fd)


def where(fd: int, path: str, follow: bool = True) -> tuple[str, str, bool]:
    """(the directory the lookup ends in, as a host path; the last name; must_be_dir)."""
    with resolve(fd, path, follow=follow) as r:
        return os.readlink(f"/proc/self/fd/{r.dir_fd}"), r.name, r.must_be_dir


def refused(fd: int, path: str, follow: bool = True) -> Errno:
    with pytest.raises(WasiError) as info, resolve(fd, path, follow=follow):
        pass
    return info.value.errno


@pytest.mark.parametrize(
    ("path", "directory", "name"),
    [
        ("top", "", "top"),
        ("a/b/f", "a/b", "f"),
        ("./a//b/./f", "a/b", "f"),
        ("a/b/../../top", "", "top"),
        ("a/..", "", "."),
        (".", "", "."),
        ("a/b/", "a", "b"),
    ],
)
def test_paths_inside(root: tuple[Path, int], path: str, directory: str, name: str) -> None:
    box, fd = root
    got_dir, got_name, _ = where(fd, path)
    assert Path(got_dir) == (box / directory).resolve()
    assert got_name == name


def test_trailing_slash_means_a_directory(root: tuple[Path, int]) -> None:
    assert where(root[1], "a/b/")[2] is True
    assert where(root[1], "a/b")[2] is False


@pytest.mark.parametrize("path", ["..", "../outside", "a/../../outside", "a/b/../../../box/top"])
def test_dotdot_past_the_root_is_notcapable(root: tuple[Path, int], path: str) -> None:
    assert refused(root[1], path) == Errno.NOTCAPABLE


def test_absolute_is_notcapable(root: tuple[Path, int]) -> None:
    assert refused(root[1], "/etc/passwd") == Errno.NOTCAPABLE


def test_empty_is_noent(root: tuple[Path, int]) -> None:
    assert refused(root[1], "") == Errno.NOENT


def test_nul_is_inval(root: tuple[Path, int]) -> None:
    assert refused(root[1], "a\0b") == Errno.INVAL


def test_symlinks_out_are_notcapable_in_any_component(root: tuple[Path, int]) -> None:
    box, fd = root
    (box / "out").symlink_to("../outside")
    (box / "abs").symlink_to(box / "top")  # absolute, even though it points inside
    (box / "a" / "up").symlink_to("../..")
    assert refused(fd, "out") == Errno.NOTCAPABLE
    assert refused(fd, "abs") == Errno.NOTCAPABLE
    assert refused(fd, "a/up/outside") == Errno.NOTCAPABLE  # an intermediate component
    assert refused(fd, "a/up") == Errno.NOTCAPABLE


def test_symlink_in_last_component_not_followed_unless_asked(root: tuple[Path, int]) -> None:
    box, fd = root
    (box / "out").symlink_to("../outside")
    assert where(fd, "out", follow=False)[1] == "out"


def test_symlinks_inside_are_followed(root: tuple[Path, int]) -> None:
    box, fd = root
    (box / "to_b").symlink_to("a/b")
    (box / "a" / "b" / "back").symlink_to("../../top")
    got_dir, name, _ = where(fd, "to_b/back")
    assert (Path(got_dir), name) == (box.resolve(), "top")


def test_symlink_chain_and_loop(root: tuple[Path, int]) -> None:
    box, fd = root
    (box / "l0").symlink_to("top")
    for i in range(1, MAX_SYMLINKS + 1):
        (box / f"l{i}").symlink_to(f"l{i - 1}")
    assert where(fd, f"l{MAX_SYMLINKS - 1}")[1] == "top"
    assert refused(fd, f"l{MAX_SYMLINKS}") == Errno.LOOP
    (box / "self").symlink_to("self")
    assert refused(fd, "self") == Errno.LOOP


def test_missing_and_not_a_directory(root: tuple[Path, int]) -> None:
    fd = root[1]
    assert refused(fd, "nope/x") == Errno.NOENT
    assert refused(fd, "top/x") == Errno.NOTDIR
    assert where(fd, "nope")[1] == "nope"  # the last component may not exist (creation)


def test_opened_directories_are_closed(root: tuple[Path, int]) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        where(root[1], "a/b/f")
        refused(root[1], "a/b/../../../x")
    assert len(os.listdir("/proc/self/fd")) == before
