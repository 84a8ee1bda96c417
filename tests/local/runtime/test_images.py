"""Image table, bundled argosay/cowsay stand-ins and the capacity queue."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from airflow_argo_eci.local.runtime.capacity import CapacityQueue
from airflow_argo_eci.local.runtime.images import (
    BUNDLED_DIR,
    ImageError,
    ImageTable,
    load_image_map,
    split_image,
)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bundled_{name}", BUNDLED_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


argosay = _load("argosay")
cowsay = _load("cowsay")


def test_split_image() -> None:
    assert split_image("python:alpine3.23") == ("python", "alpine3.23")
    assert split_image("docker.io/library/busybox") == ("busybox", "latest")
    assert split_image("localhost:5000/acme/tool:1") == ("localhost:5000/acme/tool", "1")
    assert split_image("alpine@sha256:abc") == ("alpine", "sha256:abc")


def test_resolve_builtins(tmp_path: Path) -> None:
    table = ImageTable(tmp_path, image_map={})
    python = table.resolve("python:3.12-slim")
    assert python.entrypoint == ["python3"] and python.bin_dir is not None
    assert sys.executable in (python.bin_dir / "python").read_text()
    assert table.resolve("busybox").entrypoint == ["sh"]
    assert table.resolve("argoproj/argosay:v1").entrypoint == ["argosay"]
    v1_bin = table.resolve("argoproj/argosay:v1").bin_dir
    assert v1_bin is not None and (v1_bin / "cowsay").exists()
    assert table.resolve("ghcr.io/acme/unknown:1").entrypoint is None
    with pytest.raises(ImageError, match=r"container\.image"):
        table.resolve("")


def test_image_map_wins_and_validates(tmp_path: Path) -> None:
    table = ImageTable(tmp_path, image_map={"busybox:1.36": ["/bin/echo", "mapped"]})
    assert table.resolve("busybox:1.36").entrypoint == ["/bin/echo", "mapped"]
    assert table.resolve("busybox:1.35").entrypoint == ["sh"]
    bad = tmp_path / "map.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ImageError, match="must map image names"):
        load_image_map(bad)
    with pytest.raises(ImageError, match="cannot read"):
        load_image_map(tmp_path / "missing.yaml")


def test_argosay_v2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert argosay.main(["v2"]) == 0
    assert capsys.readouterr().err == "hello argo\n"
    target = tmp_path / "sub" / "out"
    assert argosay.main(["v2", "echo", "msg", str(target)]) == 0
    assert target.read_text() == "msg"
    assert argosay.main(["v2", "cat", str(target)]) == 0
    assert capsys.readouterr().out == "msg"
    assert argosay.main(["v2", "assert_contains", str(target), "sg"]) == 0
    assert argosay.main(["v2", "assert_contains", str(target), "zz"]) == 2
    assert 'to contain "zz"' in capsys.readouterr().err
    assert argosay.main(["v2", "exit", "7"]) == 7
    assert argosay.main(["v2", "sleep", "1ms"]) == 0
    assert argosay.main(["v2", "nope"]) == 2
    assert capsys.readouterr().err.startswith("panic: usage: argosay")
    assert argosay.main(["v1", "a", "b"]) == 0
    assert capsys.readouterr().out == "a b\n"


def test_go_durations() -> None:
    assert argosay.parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert argosay.parse_duration("300ms") == pytest.approx(0.3)
    assert argosay.parse_duration("0") == 0.0
    with pytest.raises(argosay.Panic, match="invalid duration"):
        argosay.parse_duration("10")


def test_cowsay_bubble() -> None:
    assert cowsay.bubble("hi") == [" ____", "< hi >", " ----"]
    lines = cowsay.bubble("one two three", width=5)
    assert lines[1].startswith("/ ") and lines[-2].startswith("\\ ") and lines[2].startswith("| ")


def test_capacity_queue_fifo_and_oversize() -> None:
    started: list[str] = []
    queue: CapacityQueue[str] = CapacityQueue(1.0)
    queue.submit("a", 0.6, lambda: started.append("a"))
    queue.submit("b", 0.6, lambda: started.append("b"))
    queue.submit("c", 0.1, lambda: started.append("c"))  # fits, but FIFO: waits behind b
    assert started == ["a"] and queue.queued() == ["b", "c"]
    assert queue.remove("b") and started == ["a", "c"]
    queue.release("a")
    queue.release("c")
    queue.submit("huge", 5.0, lambda: started.append("huge"))
    assert started[-1] == "huge" and queue.used() == 5.0
    queue.submit("d", 0.1, lambda: started.append("d"))
    assert queue.is_queued("d")
    queue.release("huge")
    assert started[-1] == "d"
    with pytest.raises(ValueError, match="capacity_vcpu"):
        CapacityQueue(0)
