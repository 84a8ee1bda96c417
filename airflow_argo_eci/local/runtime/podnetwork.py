"""Pod addresses and the network namespaces pods share.

Every pod gets an address of its own in ``127.0.0.0/8`` (:func:`pod_address`, a hash of its
namespace and name, never ``127.0.0.x``): the API shows it as ``status.podIP``, the downward API
gives it to ``fieldRef: status.podIP``. Inside any Linux network namespace the whole of
``127.0.0.0/8`` is local once ``lo`` is up, so a pod can bind and reach that address without any
interface being configured.

By default each pod has a network namespace of its own (bubblewrap's ``--unshare-net``): it reaches
nothing but itself. Pods that must reach one another (the pods of a workflow with ``daemon: true``
steps, whose later steps call the daemon at ``{{steps.X.ip}}``) join one **shared** namespace, made
here: :meth:`PodNetworks.acquire` creates it on the first pod of its key and drops it when the last
pod of that key has ended. A pod that runs readiness probes gets a namespace made here too (a key of
its own), so the runtime can open probe connections inside it (:func:`connect_inside`). In these
namespaces ``net.ipv4.ip_unprivileged_port_start`` is 0, as container runtimes set it in a pod, so
a pod may bind port 80.

Making a namespace (``unshare(CLONE_NEWNET)`` in a short-lived thread of this process, which moves
only that thread) and entering one (``setns``, and ``nsenter`` for the pod's process) need
``CAP_SYS_ADMIN``: the runtime has it when it runs as root. Otherwise :class:`NetworkError` says so,
and the pod fails to start with that message rather than running with a network it did not ask for.
Pods sharing a namespace also share its ports: two of them cannot both listen on ``0.0.0.0:8080``
(bind to the pod's own address to avoid that).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from airflow_argo_eci.conventions import fnv32a

#: the pod's own address in a shared network, for the bundled stand-in servers and clients
#: (``images/ports.py`` runs inside pods without this package: it spells the same name)
POD_IP_ENV = "ARGO_ECI_LOCAL_POD_IP"
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH14x"
_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

T = TypeVar("T")


class NetworkError(OSError):
    """A pod network namespace cannot be made or entered on this host."""


def pod_address(namespace: str, pod_name: str) -> str:
    """The pod's own loopback address: ``127.a.b.c`` with ``a`` in 1..254 and ``c`` in 1..254,
    from the FNV-1a hash of ``namespace/pod_name`` (stable across restarts of the cluster)."""
    h = fnv32a(f"{namespace}/{pod_name}")
    return f"127.{1 + h % 254}.{(h >> 8) & 0xFF}.{1 + (h >> 16) % 254}"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _in_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a new thread of its own and return its result (or raise its error): the
    namespace calls below move only the calling thread, which then ends."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name="pod-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _make_namespace() -> int:
    """A new network namespace with ``lo`` up and privileged ports open; returns an fd on it."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetworkError(errno, "cannot create a pod network namespace: unshare(CLONE_NEWNET): "
                                  f"{os.strerror(errno)} (the local cluster shares a network between pods only "
                                  "when it runs as root)")
    fd = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
        with open(_PORT_START, "w") as f:
            f.write("0")
    except OSError:
        os.close(fd)
        raise
    return fd


def _enter(fd: int) -> None:
    libc = _libc()
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetworkError(errno, f"cannot enter a pod network namespace: setns: {os.strerror(errno)}")


def connect_inside(fd: int | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port`` opened inside the namespace ``fd`` (this process's own
    network when ``fd`` is None); the socket stays in that namespace wherever it is used."""
    def work() -> socket.socket:
        if fd is not None:
            _enter(fd)
        return socket.create_connection((host, port), timeout=timeout)
    return _in_thread(work) if fd is not None else work()


@dataclass
class _Namespace:
    fd: int
    users: int


class PodNetworks:
    """The shared network namespaces by key, counted by the pods using them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spaces: dict[str, _Namespace] = {}
        self.nsenter = shutil.which("nsenter")

    def acquire(self, key: str) -> int:
        """The fd of ``key``'s namespace (made on first use); pair every call with :meth:`release`."""
        with self._lock:
            space = self._spaces.get(key)
            if space is None:
                if self.nsenter is None:
                    raise NetworkError("cannot put a pod into a shared network: nsenter (util-linux) is not "
                                       "installed")
                space = _Namespace(_in_thread(_make_namespace), 0)
                self._spaces[key] = space
            space.users += 1
            return space.fd

    def release(self, key: str) -> None:
        """One pod of ``key`` has ended; the namespace goes with its last pod."""
        with self._lock:
            space = self._spaces.get(key)
            if space is None:
                return
            space.users -= 1
            if space.users <= 0:
                del self._spaces[key]
                os.close(space.fd)

    def enter_command(self, fd: int) -> list[str]:
        """The prefix that runs a command inside the namespace ``fd`` (``fd`` must be passed to the child)."""
        assert self.nsenter is not None
        return [self.nsenter, f"--net=/proc/self/fd/{fd}", "--"]

    def close(self) -> None:
        """Drop every namespace (the runtime shut down)."""
        with self._lock:
            for space in self._spaces.values():
                os.close(space.fd)
            self._spaces.clear()
