"""host_entries: the host directory listings a pod's root splices, kept while a directory is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from airflow_argo_eci.local.runtime.sandbox import host_entries


def _age(path: Path, seconds: float) -> int:
    """Set ``path``'s mtime ``seconds`` in the past; the new mtime in ns."""
    when = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(when, when))
    return when


def test_entries_are_sorted_with_link_targets(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").write_text("x")
    (tmp_path / "c").symlink_to("b")
    assert host_entries(str(tmp_path)) == (("a", None), ("b", None), ("c", "b"))


def test_a_settled_directory_is_read_again_once_it_changes(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    _age(tmp_path, 60)
    assert host_entries(str(tmp_path)) == (("one", None),)
    (tmp_path / "two").mkdir()  # the directory's mtime moves to now
    assert host_entries(str(tmp_path)) == (("one", None), ("two", None))


def test_the_listing_is_kept_while_inode_and_mtime_stay_the_same(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    settled = _age(tmp_path, 60)
    assert host_entries(str(tmp_path)) == (("one", None),)
    (tmp_path / "two").mkdir()
    os.utime(tmp_path, ns=(settled, settled))  # the same mtime: the kept listing is served
    assert host_entries(str(tmp_path)) == (("one", None),)


def test_a_recently_changed_directory_is_never_kept(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    recent = _age(tmp_path, 0.5)  # within the two seconds a coarse timestamp may not tell apart
    assert host_entries(str(tmp_path)) == (("one", None),)
    (tmp_path / "two").mkdir()
    os.utime(tmp_path, ns=(recent, recent))
    assert host_entries(str(tmp_path)) == (("one", None), ("two", None))
