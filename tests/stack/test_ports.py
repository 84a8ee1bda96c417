"""The stack's ports: chosen where the kernel's own port-0 picks never land."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from airflow_argo_eci.stack import ports


def _kernel_pick() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_free_port_is_below_every_port_the_kernel_hands_out() -> None:
    low, high = ports.ephemeral_range()
    assert (low, high) == tuple(int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    picked = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < low for port in picked), picked
    assert len(picked) > 1  # spread out: two stacks started together do not race for one port
    kernel = {_kernel_pick() for _ in range(50)}
    assert all(low <= port <= high for port in kernel)
    assert not picked & kernel


def test_port_in_use_sees_a_listener_and_its_end() -> None:
    port = ports.free_port()
    assert not ports.port_in_use(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert ports.port_in_use(port)
    assert not ports.port_in_use(port)


@pytest.mark.parametrize("content", ["1024 65535", "garbage"])
def test_without_room_below_the_range_the_kernel_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       content: str) -> None:
    fake = tmp_path / "ip_local_port_range"
    fake.write_text(content)
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", fake)
    low, high = ports.ephemeral_range()
    port = ports.free_port()
    if content == "garbage":
        assert (low, high) == (32768, 60999)  # Linux's default
        assert ports.LOWEST <= port < 32768
    else:
        assert (low, high) == (1024, 65535)
        assert port >= 1024 and not ports.port_in_use(port)
