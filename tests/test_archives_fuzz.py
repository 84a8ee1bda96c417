"""Property-based fuzzing of archives.py: no archive escapes its target, however its members look.

Archives come from workflow steps (user code). For any sequence of members (files, directories,
symbolic and hard links with any names and targets, devices, FIFOs), unpacking either raises
:class:`ArchiveError` and leaves nothing behind, or succeeds and every link of the result resolves
inside the destination; nothing beside the destination is touched; no other exception escapes.
Packing a tree either refuses it (a link leaving it) or round-trips it exactly.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_argo_eci.archives import ArchiveError, pack_tgz, unpack_tgz, unpack_tgz_into

#: seconds one unpack may take (the fuzzed archives are tiny)
BUDGET_SECONDS = 2.0

_component = st.sampled_from(["top", "a", "b", "sub", "..", ".", "", "x y", "top"])
_path = st.builds(lambda absolute, parts: ("/" if absolute else "") + "/".join(parts),
                  st.sampled_from([False, False, False, False, True]),  # mostly relative names
                  st.lists(_component, min_size=1, max_size=4))
_kinds = st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "chardev"])
_member = st.tuples(_kinds, _path, _path, st.binary(max_size=64), st.integers(min_value=0, max_value=0o7777))


def _archive(members: list[tuple[str, str, str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target, data, mode in members:
            info = tarfile.TarInfo(name or ".")
            info.mode = mode
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = target
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _snapshot(base: Path, skip: Path) -> dict[str, tuple[str, bytes | str]]:
    """Everything below ``base`` except ``skip``: type and content (or link target)."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            full = Path(root) / name
            if full == skip or skip in full.parents:
                continue
            rel = str(full.relative_to(base))
            if full.is_symlink():
                found[rel] = ("link", os.readlink(full))
            elif full.is_file():
                found[rel] = ("file", full.read_bytes())
            else:
                found[rel] = ("dir", "")
    return found


def _inside(path: Path, dest: Path) -> bool:
    real = os.path.realpath(path)
    top = os.path.realpath(dest)
    return real == top or real.startswith(top + os.sep)


def _assert_contained(dest: Path) -> None:
    if not dest.exists() and not dest.is_symlink():
        return
    assert not dest.is_symlink(), "the destination itself became a link"
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            full = Path(root) / name
            if full.is_symlink():
                assert _inside(full, dest), f"{full} -> {os.readlink(full)} resolves outside {dest}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=st.lists(_member, max_size=8), mode=st.sampled_from(["single", "multi", "into"]))
def test_unpacking_never_escapes(members: list[tuple[str, str, str, bytes, int]], mode: str) -> None:
    data = _archive(members)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        (base / "sibling").mkdir()
        (base / "sibling" / "secret").write_text("outside")
        (base / "x").write_text("beside")
        box = base / "box"
        box.mkdir()
        before = _snapshot(base, box)
        dest = box / "dest"
        started = time.monotonic()
        try:
            if mode == "into":
                unpack_tgz_into(io.BytesIO(data), dest)
            else:
                unpack_tgz(io.BytesIO(data), dest, single_entry=mode == "single")
        except ArchiveError:
            leftovers = sorted(p.name for p in box.iterdir())
            assert leftovers in ([], ["dest"]), leftovers
            if dest.exists():
                assert mode == "into" and list(dest.iterdir()) == []
        else:
            _assert_contained(dest)
            assert sorted(p.name for p in box.iterdir()) == ["dest"]
        assert time.monotonic() - started < BUDGET_SECONDS
        assert _snapshot(base, box) == before


_tree_entry = st.tuples(st.sampled_from(["file", "dir", "link"]), st.lists(st.sampled_from(["a", "b", "c"]),
                                                                             min_size=1, max_size=3),
                        st.sampled_from(["a", "../a", "b/c", "../../outside", "/etc/passwd", ".", "..", "c/../a"]))


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(_tree_entry, max_size=10))
def test_packing_refuses_or_round_trips(entries: list[tuple[str, list[str], str]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        (base / "outside").write_text("never packed")
        src = base / "src"
        src.mkdir()
        for kind, parts, target in entries:
            path = src.joinpath(*parts)
            if os.path.lexists(path) or not path.parent.is_dir() or path.parent.is_symlink():
                continue
            if kind == "file":
                path.write_text("/".join(parts))
            elif kind == "dir":
                path.mkdir()
            else:
                path.symlink_to(target)
        buf = io.BytesIO()
        try:
            pack_tgz(src, buf)
        except ArchiveError as exc:
            assert "outside the artifact" in str(exc)
            return
        dest = unpack_tgz(io.BytesIO(buf.getvalue()), base / "dest")
        assert _snapshot(dest, dest / "-") == _snapshot(src, src / "-")
        _assert_contained(dest)
