"""archives.py: Argo's tgz layout both ways, and every way an archive could escape its target."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_argo_eci.archives import ArchiveError, pack_tgz, unpack_tgz, unpack_tgz_into


def _tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _names(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_file_round_trip_uses_argos_single_entry_layout(tmp_path: Path) -> None:
    src = tmp_path / "hello_world.txt"
    src.write_bytes(b"hello world\n")
    os.chmod(src, 0o640)
    buf = io.BytesIO()
    pack_tgz(src, buf)

    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = tar.getmembers()
    assert [(m.name, m.uid, m.gid, m.uname) for m in members] == [("hello_world.txt", 0, 0, "")]

    out = unpack_tgz(io.BytesIO(buf.getvalue()), tmp_path / "in" / "message")
    assert out.read_bytes() == b"hello world\n"
    assert out.stat().st_mode & 0o777 == 0o640
    assert _names(tmp_path / "in") == ["message"]  # no staging directory left behind


def test_directory_round_trip_keeps_tree_and_inner_links(tmp_path: Path) -> None:
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (src / "link").symlink_to("sub/b.bin")
    archive = tmp_path / "out.tgz"
    with archive.open("wb") as fh:
        pack_tgz(src, fh)

    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["out", "out/a.txt", "out/link", "out/sub", "out/sub/b.bin"]

    dest = unpack_tgz(archive, tmp_path / "restored")
    assert _names(dest) == ["a.txt", "link", "sub", "sub/b.bin"]
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "sub/b.bin"
    assert (dest / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100


def test_unpack_into_directory_and_overwrite_rules(tmp_path: Path) -> None:
    data = _tgz([_file("one.txt", b"1"), _file("two/three.txt", b"3")])
    target = tmp_path / "t"
    assert unpack_tgz_into(io.BytesIO(data), target) == [target / "one.txt", target / "two"]
    assert (target / "two" / "three.txt").read_bytes() == b"3"

    with pytest.raises(ArchiveError, match=r"already exist.*overwrite=True"):
        unpack_tgz_into(io.BytesIO(data), target)
    (target / "one.txt").write_bytes(b"changed")
    unpack_tgz_into(io.BytesIO(data), target, overwrite=True)
    assert (target / "one.txt").read_bytes() == b"1"


def test_existing_destination_is_kept_unless_overwrite(tmp_path: Path) -> None:
    data = _tgz([_file("f", b"new")])
    dest = tmp_path / "f"
    dest.write_bytes(b"old")
    with pytest.raises(ArchiveError, match="already exists"):
        unpack_tgz(io.BytesIO(data), dest)
    assert dest.read_bytes() == b"old"
    unpack_tgz(io.BytesIO(data), dest, overwrite=True)
    assert dest.read_bytes() == b"new"
    assert _names(tmp_path) == ["f"]


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([_file("/etc/evil")], "absolute name"),
        ([_file("ok/../../evil")], r"climbs out .* '\.\.'"),
        ([_link("out", "/etc/passwd")], "symbolic link to '/etc/passwd'"),
        ([_link("out", "../../x")], "symbolic link to '../../x'"),
        ([_file("out/f"), _link("out/h", "../../f", tarfile.LNKTYPE)], "hard link"),
        ([_link("out/s", "."), _link("out/s/t", "../../escape")], "outside|unsafe"),
        ([_link("dev", "", tarfile.CHRTYPE)], "device, FIFO or special"),
        ([_link("fifo", "", tarfile.FIFOTYPE)], "device, FIFO or special"),
    ],
    ids=["absolute", "dotdot", "abs-symlink", "rel-symlink-out", "hardlink-out", "symlink-chain", "chardev", "fifo"],
)
def test_unsafe_members_are_refused_and_nothing_is_written(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], why: str
) -> None:
    data = _tgz(members)
    with pytest.raises(ArchiveError, match=why):
        unpack_tgz(io.BytesIO(data), tmp_path / "dest", single_entry=False)
    assert list(tmp_path.iterdir()) == []


def test_single_entry_rule_and_size_cap(tmp_path: Path) -> None:
    two = _tgz([_file("a"), _file("b")])
    with pytest.raises(ArchiveError, match=r"exactly one top-level .* found a, b"):
        unpack_tgz(io.BytesIO(two), tmp_path / "x")
    assert list(tmp_path.iterdir()) == []
    assert _names(unpack_tgz(io.BytesIO(two), tmp_path / "x", single_entry=False)) == ["a", "b"]

    big = _tgz([_file("big", b"0" * 5000)])
    with pytest.raises(ArchiveError, match="more than 4096 bytes"):
        unpack_tgz(io.BytesIO(big), tmp_path / "y", max_bytes=4096)
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"not a tarball at all"],
                         ids=["truncated", "garbage"])
def test_corrupt_archives_fail_cleanly(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(200_000))
    buf = io.BytesIO()
    pack_tgz(src, buf)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match=r"truncated or corrupt|not a tar"):
        unpack_tgz(io.BytesIO(damage(buf.getvalue())), out / "dest")
    assert list(out.iterdir()) == []


def test_pack_refuses_special_files_and_missing_source(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArchiveError, match="only files, directories and links"):
        pack_tgz(tmp_path / "pipe", io.BytesIO())
    with pytest.raises(ArchiveError, match="no such file"):
        pack_tgz(tmp_path / "missing", io.BytesIO())
    with pytest.raises(ArchiveError, match="compression_level"):
        (tmp_path / "f").write_text("x")
        pack_tgz(tmp_path / "f", io.BytesIO(), compression_level=11)
