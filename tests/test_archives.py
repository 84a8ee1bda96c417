"""archives.py: Argo's tgz layout both ways, and every way an archive could escape its target."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_argo_eci.archives import ArchiveError, PackPolicy, pack_tgz, unpack_tgz, unpack_tgz_into


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
        ([_link("out/s", "."), _link("out/s/t", "../../escape")], "outside|unsafe|below the symbolic link"),
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


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([_link("top", ".")], "a top-level entry cannot be a link"),
        ([_file("sibling", b"s"), _file("top/f"), _link("top/l", "../sibling")], "climbs above the top-level entry"),
        ([_file("top/x"), _link("top/a/l", "../../top/x")], "climbs above the top-level entry 'top'"),
        ([_file("top/f"), _link("top/d", "."), _link("top/s", "d/../x")], "climbs above"),
        ([_file("top/f"), _link("top/d", "sub/../.."), _file("top/g")], "climbs above"),
        ([_file("top/f"), _link("top/a", "b"), _link("top/b", "/etc"), _link("top/c", "a/passwd")],
         "the target is absolute"),
        ([_file("top/f"), _link("top/a", "b"), _link("top/b", "a"), _link("top/c", "a/x")], "too many levels"),
        ([_file("a", b"1"), _link("b", "a", tarfile.LNKTYPE)], "hard link to 'a'"),
        ([_file("top/f"), _link("top/h", "other/f", tarfile.LNKTYPE)], "not an earlier file"),
        ([_file("top/f"), _link("top/h", "top/later", tarfile.LNKTYPE), _file("top/later")], "not an earlier file"),
        ([_file("top/f"), _link("top/d", "sub"), _file("top/d/x")], "lies below the symbolic link 'top/d'"),
        ([_file("top/f"), _link("top/l", "f"), _file("top/l", b"overwrite")], "replaces the symbolic link"),
        ([_file("top/f"), _link("top/f", "g")], "replaces an earlier member with a link"),
    ],
    ids=["top-dot", "sibling", "out-and-back", "through-dot-link", "dotdot-inside-target", "through-absolute-link",
         "loop", "top-level-hardlink", "hardlink-other-entry", "hardlink-forward", "below-link", "replace-link",
         "link-replaces-file"],
)
def test_links_must_stay_inside_their_own_entry(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], why: str
) -> None:
    data = _tgz(members)
    for unpack in (lambda d: unpack_tgz(io.BytesIO(data), d, single_entry=False),
                   lambda d: unpack_tgz_into(io.BytesIO(data), d)):
        with pytest.raises(ArchiveError, match=why):
            unpack(tmp_path / "dest")
        assert list(tmp_path.iterdir()) in ([], [tmp_path / "dest"])
        assert not (tmp_path / "dest").exists() or list((tmp_path / "dest").iterdir()) == []


def test_links_inside_their_entry_are_kept(tmp_path: Path) -> None:
    data = _tgz([_file("top/sub/f", b"inner"), _link("top/l", "sub/f"), _link("top/sub/up", "../l"),
                 _link("top/self", "."), _link("top/d", "sub"), _link("top/via", "d/f"),
                 _link("top/h", "top/sub/f", tarfile.LNKTYPE)])
    dest = unpack_tgz(io.BytesIO(data), tmp_path / "renamed")
    assert (dest / "l").read_bytes() == (dest / "sub" / "up").read_bytes() == (dest / "via").read_bytes() == b"inner"
    assert os.readlink(dest / "self") == "." and os.path.realpath(dest / "self") == str(dest.resolve())
    assert (dest / "h").read_bytes() == b"inner" and not (dest / "h").is_symlink()
    assert os.stat(dest / "h").st_ino == os.stat(dest / "sub" / "f").st_ino


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("inner")
    (src / "l").symlink_to("sub/f")
    os.link(src / "sub" / "f", src / "hard")
    return src


def test_pack_keeps_links_and_hard_links_as_members(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    buf = io.BytesIO()
    assert pack_tgz(src, buf) == []
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        kinds = {m.name: (m.type, m.linkname) for m in tar.getmembers()}
    assert kinds == {"out": (tarfile.DIRTYPE, ""), "out/hard": (tarfile.REGTYPE, ""),
                     "out/l": (tarfile.SYMTYPE, "sub/f"), "out/sub": (tarfile.DIRTYPE, ""),
                     "out/sub/f": (tarfile.LNKTYPE, "out/hard")}
    dest = unpack_tgz(io.BytesIO(buf.getvalue()), tmp_path / "back")
    assert (dest / "l").read_text() == (dest / "sub" / "f").read_text() == "inner"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../secret", "../../out/sub/f", "."])
def test_pack_refuses_links_out_of_the_artifact(tmp_path: Path, target: str) -> None:
    src = _tree(tmp_path)
    (tmp_path / "secret").write_text("never packed")
    (src / "sub" / "esc").symlink_to(target)
    if target == ".":  # harmless inside sub: make it escape through it
        (src / "esc2").symlink_to("sub/esc/../../secret")
    with pytest.raises(ArchiveError, match=r"is a symbolic link to .*outside the artifact"):
        pack_tgz(src, io.BytesIO())


def test_pack_refuses_special_files_inside_and_a_link_on_top(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    os.mkfifo(src / "sub" / "pipe")
    with pytest.raises(ArchiveError, match=r"'out/sub/pipe': it is a FIFO"):
        pack_tgz(src, io.BytesIO())
    (tmp_path / "top").symlink_to(src / "sub" / "f")
    with pytest.raises(ArchiveError, match="it is a symbolic link; archive the path it points to"):
        pack_tgz(tmp_path / "top", io.BytesIO())


def test_pack_size_budget(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    (src / "big").write_bytes(b"0" * 10_000)
    with pytest.raises(ArchiveError, match=r"more than 5000 bytes of files \(the size budget; reached at 'out/big'\)"):
        pack_tgz(src, io.BytesIO(), policy=PackPolicy(max_bytes=5000))
    pack_tgz(src, io.BytesIO(), policy=PackPolicy(max_bytes=10_005))  # hard links count once


def test_pack_host_copy_skips_what_not_every_user_may_read(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    os.chmod(src, 0o755)
    os.chmod(src / "sub", 0o755)
    os.chmod(src / "sub" / "f", 0o644)
    (src / "private").mkdir(mode=0o700)
    (src / "private" / "f").write_text("p")
    (src / "secret").write_text("s")
    os.chmod(src / "secret", 0o600)
    (src / "esc").symlink_to("/etc/passwd")
    os.mkfifo(src / "pipe")
    (src / "home").mkdir(mode=0o755)
    buf = io.BytesIO()
    skipped = pack_tgz(src, buf, policy=PackPolicy(host_copy=True, exclude=frozenset({str(src / "home")})))
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = sorted(tar.getnames())
    assert names == ["out", "out/hard", "out/l", "out/sub", "out/sub/f"]
    assert len(skipped) == 5 and any("esc" in s and "outside the artifact" in s for s in skipped), skipped


def test_pack_top_entry_is_named_after_the_artifact_path_and_checked(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    buf = io.BytesIO()
    pack_tgz(src, buf, name="d")  # the pod's /tmp/d was a link to what is packed
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert sorted(tar.getnames()) == ["d", "d/hard", "d/l", "d/sub", "d/sub/f"]
    with pytest.raises(ArchiveError, match="must be a plain name"):
        pack_tgz(src, io.BytesIO(), name="../x")
    secret = tmp_path / "secret-file"  # the host's copy: the top entry too must be readable by all
    secret.write_text("s")
    os.chmod(secret, 0o600)
    with pytest.raises(ArchiveError, match="not readable by every user"):
        pack_tgz(secret, io.BytesIO(), policy=PackPolicy(host_copy=True))
