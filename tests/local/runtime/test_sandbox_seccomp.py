"""The seccomp BPF generator: program shape, what it answers per syscall (emulated), the syscall
tables against the kernel headers, and a filter loaded into a real child process."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_argo_eci.local.runtime import seccomp
from airflow_argo_eci.local.runtime.seccomp import (
    AUDIT_ARCH,
    BPF_JEQ_K,
    BPF_JGE_K,
    BPF_JSET_K,
    BPF_LD_W_ABS,
    BPF_RET_K,
    DENIED,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SPECIAL,
)

EPERM = SECCOMP_RET_ERRNO | 1
ENOSYS = SECCOMP_RET_ERRNO | 38
#: harmless calls every process makes: read, write, openat, execve, exit_group, mmap
ALLOWED = {"x86_64": [0, 1, 257, 59, 231, 9], "aarch64": [63, 64, 56, 221, 94, 222]}
#: clone flags of a thread (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID)
THREAD_FLAGS = 0x3D0F00
HEADERS = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
           "aarch64": Path("/usr/include/asm-generic/unistd.h")}


def run_bpf(prog: list[tuple[int, int, int, int]], nr: int, arch: int, arg0: int = 0) -> int:
    """A classic-BPF interpreter for the instructions the generator emits, over ``seccomp_data``."""
    data = struct.pack("<IIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    pc = acc = 0
    for _ in range(len(prog) + 1):  # no loops in classic BPF: a longer run is a bug
        code, jt, jf, k = prog[pc]
        if code == BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K):
            taken = {BPF_JEQ_K: acc == k, BPF_JGE_K: acc >= k, BPF_JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unknown opcode {code:#x} at {pc}")
    raise AssertionError("the program did not return")


@pytest.mark.parametrize("arch", sorted(DENIED))
def test_program_shape(arch: str) -> None:
    prog = seccomp.program(arch)
    assert len(prog) < 4096  # BPF_MAXINSNS
    assert prog[-1] == (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    assert prog[0] == (BPF_LD_W_ABS, 0, 0, 4)  # the arch word first
    for pc, (code, jt, jf, _k) in enumerate(prog):
        assert code in (BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K)
        if code in (BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K):
            assert pc + 1 + max(jt, jf) < len(prog), f"jump out of the program at {pc}"
    packed = seccomp.build_filter(arch)
    assert len(packed) == 8 * len(prog)
    assert struct.unpack_from("=HBBI", packed, 8 * (len(prog) - 1)) == prog[-1]


@pytest.mark.parametrize("arch", sorted(DENIED))
def test_emulated_verdicts(arch: str) -> None:
    prog = seccomp.program(arch)
    word = AUDIT_ARCH[arch]
    for name, nr in DENIED[arch].items():
        assert run_bpf(prog, nr, word) == EPERM, name
    for nr in ALLOWED[arch]:
        assert run_bpf(prog, nr, word) == SECCOMP_RET_ALLOW, nr
    special = SPECIAL[arch]
    assert run_bpf(prog, special["clone3"], word) == ENOSYS
    assert run_bpf(prog, special["clone"], word, THREAD_FLAGS) == SECCOMP_RET_ALLOW
    assert run_bpf(prog, special["clone"], word, 17) == SECCOMP_RET_ALLOW  # fork: SIGCHLD
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        assert run_bpf(prog, special["clone"], word, 17 | flag) == EPERM, hex(flag)
    for value in seccomp.ALLOWED_PERSONALITIES:
        assert run_bpf(prog, special["personality"], word, value) == SECCOMP_RET_ALLOW, hex(value)
    assert run_bpf(prog, special["personality"], word, 0x0400000) == EPERM  # READ_IMPLIES_EXEC
    other = next(w for a, w in AUDIT_ARCH.items() if a != arch)
    assert run_bpf(prog, ALLOWED[arch][0], other) == SECCOMP_RET_KILL_PROCESS
    assert run_bpf(prog, ALLOWED[arch][0], 0x40000003) == SECCOMP_RET_KILL_PROCESS  # i386 (int 0x80)


def test_x32_abi_is_denied() -> None:
    prog = seccomp.program("x86_64")
    assert run_bpf(prog, 0x40000000 | 1, AUDIT_ARCH["x86_64"]) == EPERM  # x32 write


def test_unknown_architecture_is_an_error() -> None:
    with pytest.raises(seccomp.SeccompError, match="no seccomp filter for architecture 'riscv64'"):
        seccomp.program("riscv64")


@pytest.mark.parametrize("arch", sorted(HEADERS))
def test_syscall_numbers_match_the_kernel_headers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    text = header.read_text()
    for name, nr in {**DENIED[arch], **SPECIAL[arch]}.items():
        found = re.search(rf"#define __NR(?:3264)?_{re.escape(name)}\s+(\d+)", text)
        assert found is not None, f"{name} is not in {header}"
        assert int(found.group(1)) == nr, name


CHILD = r"""
import ctypes, errno, json, os, subprocess, sys
from airflow_argo_eci.local.runtime import seccomp
nr = {**seccomp.DENIED[seccomp.host_arch()], **seccomp.SPECIAL[seccomp.host_arch()]}
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = libc.syscall(nr[name], *[ctypes.c_long(a) for a in args])
    return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]
before = call("keyctl", 0, -3, 0)
seccomp.install()
out = {"before": before, "keyctl": call("keyctl", 0, -3, 0), "unshare": call("unshare", 0x10000000),
       "personality": call("personality", 0x0400000), "ptrace": call("ptrace", 0, 0, 0, 0)}
out["child"] = subprocess.run(["true"]).returncode  # clone3 answers ENOSYS, libc falls back to clone
out["seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
print(json.dumps(out))
"""


@pytest.mark.skipif(seccomp.host_arch() is None, reason="no filter for this architecture")
def test_a_loaded_filter_blocks_real_syscalls() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["before"] == "ok"  # keyctl works before the filter...
    assert out == {"before": "ok", "keyctl": "EPERM", "unshare": "EPERM", "personality": "EPERM",
                   "ptrace": "EPERM", "child": 0, "seccomp": "2"}
