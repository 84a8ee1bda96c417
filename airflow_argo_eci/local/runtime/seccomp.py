"""The pods' seccomp filter: a classic-BPF program generated here (no libseccomp needed).

The filter denies, with ``EPERM``, what a container runtime's default profile denies (Docker's and
containerd's ``default.json``): handle-based opens, every mount call (old and new API), ptrace and
cross-process memory access, the kernel keyring, BPF and perf, userfaultfd and io_uring, kernel
modules, kexec, reboot, swap, accounting, clock changes, syslog, quotas, namespace changes
(``setns``, ``unshare``, ``clone`` with a namespace flag), port I/O, NUMA placement and a few
obsolete calls; ``personality`` is allowed only with the values Docker allows. ``clone3`` answers
``ENOSYS`` (its flags live in memory a filter cannot read), so libc falls back to ``clone``, whose
flags are checked. Everything else is allowed.

The program first checks the architecture word (x86_64 or aarch64; any other ABI, e.g. 32-bit
``int 0x80`` calls on x86_64, kills the process) and denies the x32 ABI (syscall numbers with bit
30 set). :func:`build_filter` returns the program as bytes (an array of ``struct sock_filter``);
:func:`install` loads it into the calling process (``no_new_privs`` must be set first) and is used
by :mod:`.podinit` as the very last step before the pod's command runs.

Kept importable with ``python -I -S`` (no third-party or site imports): the pod-init loads it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

# --- classic BPF opcodes (linux/bpf_common.h) and seccomp constants (linux/seccomp.h)
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

#: offsets in ``struct seccomp_data``: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64);
#: both supported architectures are little-endian, so an argument's low 32 bits come first
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

#: clone flags that create namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET),
#: the mask Docker's profile checks
CLONE_NAMESPACE_FLAGS = 0x7E020000
#: ``personality`` values Docker's profile allows (PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE
#: combinations, and the query 0xffffffff)
ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: denied system calls (EPERM); numbers per architecture, from the kernel's unistd tables.
#: A call missing on one architecture is simply absent from its table.
DENIED: dict[str, dict[str, int]] = {
    "x86_64": {
        "open_by_handle_at": 304, "name_to_handle_at": 303,
        "mount": 165, "umount2": 166, "pivot_root": 155, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "pidfd_getfd": 438, "process_madvise": 440,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "fanotify_init": 300,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "create_module": 174,
        "get_kernel_syms": 177, "query_module": 178,
        "kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168,
        "acct": 163, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "syslog": 103, "quotactl": 179, "quotactl_fd": 443, "setns": 308, "unshare": 272,
        "ioperm": 173, "iopl": 172, "lookup_dcookie": 212, "nfsservctl": 180, "uselib": 134,
        "mbind": 237, "set_mempolicy": 238, "move_pages": 279, "migrate_pages": 256,
        "vhangup": 153, "sysfs": 139, "_sysctl": 156, "ustat": 136,
    },
    "aarch64": {
        "open_by_handle_at": 265, "name_to_handle_at": 264,
        "mount": 40, "umount2": 39, "pivot_root": 41, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "pidfd_getfd": 438, "process_madvise": 440,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "fanotify_init": 262,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225,
        "acct": 89, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "syslog": 116, "quotactl": 60, "quotactl_fd": 443, "setns": 268, "unshare": 97,
        "lookup_dcookie": 18, "nfsservctl": 42,
        "mbind": 235, "set_mempolicy": 237, "move_pages": 239, "migrate_pages": 238, "vhangup": 58,
    },
}
#: calls allowed depending on their first argument, and clone3 (ENOSYS)
SPECIAL: dict[str, dict[str, int]] = {
    "x86_64": {"clone": 56, "clone3": 435, "personality": 135},
    "aarch64": {"clone": 220, "clone3": 435, "personality": 92},
}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}
_MACHINE_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

# prctl / seccomp constants
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class SeccompError(RuntimeError):
    """The filter cannot be built or installed here."""


def host_arch() -> str | None:
    """``"x86_64"`` or ``"aarch64"`` for this machine, ``None`` when the filter does not support it."""
    return _MACHINE_ALIASES.get(os.uname().machine.lower())


def _insn(code: int, jt: int = 0, jf: int = 0, k: int = 0) -> tuple[int, int, int, int]:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise SeccompError(f"BPF jump out of range (jt={jt}, jf={jf})")
    return (code, jt, jf, k & 0xFFFFFFFF)


def _ret(value: int) -> tuple[int, int, int, int]:
    return _insn(BPF_RET_K, k=value)


def program(arch: str) -> list[tuple[int, int, int, int]]:
    """The filter for ``arch`` as a list of ``(code, jt, jf, k)`` instructions.

    Layout: arch check, x32 check (x86_64), then for each denied number a ``jeq nr`` that falls
    through to ``ret EPERM`` or skips it, then the argument checks of clone and personality, then
    ``ret ALLOW``. Every jump is short (at most a few instructions) so no offset can overflow.
    """
    if arch not in DENIED:
        raise SeccompError(f"no seccomp filter for architecture {arch!r} (supported: {', '.join(DENIED)})")
    eperm = _ret(SECCOMP_RET_ERRNO | errno.EPERM)
    allow = _ret(SECCOMP_RET_ALLOW)
    out = [
        _insn(BPF_LD_W_ABS, k=OFFSET_ARCH),
        _insn(BPF_JEQ_K, jt=1, jf=0, k=AUDIT_ARCH[arch]),
        _ret(SECCOMP_RET_KILL_PROCESS),
        _insn(BPF_LD_W_ABS, k=OFFSET_NR),
    ]
    if arch == "x86_64":
        out += [_insn(BPF_JGE_K, jt=0, jf=1, k=X32_SYSCALL_BIT), eperm]
    for number in sorted(set(DENIED[arch].values())):
        out += [_insn(BPF_JEQ_K, jt=0, jf=1, k=number), eperm]
    special = SPECIAL[arch]
    out += [_insn(BPF_JEQ_K, jt=0, jf=1, k=special["clone3"]), _ret(SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # clone: deny when any namespace flag is set in the flags (first argument)
    out += [
        _insn(BPF_JEQ_K, jt=0, jf=3, k=special["clone"]),
        _insn(BPF_LD_W_ABS, k=OFFSET_ARG0_LOW),
        _insn(BPF_JSET_K, jt=0, jf=1, k=CLONE_NAMESPACE_FLAGS),
        eperm,
    ]
    # (after the clone block the accumulator may hold clone's flags; personality reloads nr)
    out += [_insn(BPF_LD_W_ABS, k=OFFSET_NR)]
    allowed = ALLOWED_PERSONALITIES
    out += [
        _insn(BPF_JEQ_K, jt=0, jf=len(allowed) + 2, k=special["personality"]),
        _insn(BPF_LD_W_ABS, k=OFFSET_ARG0_LOW),
    ]
    for index, value in enumerate(allowed):
        # on a match jump over the remaining comparisons and the EPERM to ALLOW
        out.append(_insn(BPF_JEQ_K, jt=len(allowed) - index, jf=0, k=value))
    out += [eperm, allow]
    return out


def build_filter(arch: str | None = None) -> bytes:
    """The filter for ``arch`` (default: this machine) as packed ``struct sock_filter`` entries."""
    arch = arch or host_arch()
    if arch is None:
        raise SeccompError(
            f"no seccomp filter for this machine ({os.uname().machine!r}); supported: {', '.join(DENIED)}")
    return b"".join(struct.pack("=HBBI", *insn) for insn in program(arch))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(filter_bytes: bytes | None = None) -> None:
    """Set ``no_new_privs`` and load the filter into this process (inherited by its children and
    kept across ``execve``). Raises :class:`SeccompError` with the kernel's reason on failure."""
    data = build_filter() if filter_bytes is None else filter_bytes
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(data, len(data))
    prog = _SockFprog(len(data) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {errno.errorcode.get(err, err)}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(f"prctl(PR_SET_SECCOMP) failed: {errno.errorcode.get(err, err)} "
                           "(the kernel lacks CONFIG_SECCOMP_FILTER?)")
