"""The seccomp filter every cell (and the terminal's shell) runs under: no namespaces, no mounts, no ptrace.

Why a filter and not the kernel's switch: the host lets unprivileged users make user
namespaces (Debian's default; kernels without ``kernel.unprivileged_userns_clone`` have
no switch at all but ``user.max_user_namespaces``, which is per host and would break
rootless tools beside the platform). Inside a user namespace of its own a cell holds
every capability there: it can mount, make network namespaces and reach kernel code
written for root. The filter takes these calls from the cell alone, is inherited by
everything it starts and cannot be removed. bubblewrap's ``--disable-userns`` would need
the cell in a user namespace of bubblewrap's making, which as root maps the cell to
root outside.

Refused with EPERM: unshare, setns, the mount calls, pivot_root, chroot, ptrace, bpf,
perf_event_open, userfaultfd, the kernel keyring, io_uring; clone with any namespace
flag. clone3 answers ENOSYS (its flags are behind a pointer the filter cannot read),
which makes glibc fall back to clone. System calls of another ABI (i386 via int 0x80,
x32) are refused whole: they would name other numbers.

The program is classic BPF as bubblewrap's ``--seccomp FD`` and prctl(PR_SET_SECCOMP) take it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000

#: seccomp_data: nr at 0, arch at 4, args[0] at 16 (its low half on a little-endian machine).
_NR, _ARCH, _ARG0 = 0, 4, 16

#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME (linux/sched.h).
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

_REFUSED = (
    "unshare setns mount umount2 pivot_root chroot ptrace bpf perf_event_open userfaultfd keyctl add_key"
    " request_key io_uring_setup open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr"
).split()

#: Per machine: its audit arch, where another ABI's numbers start (x32 on x86_64), its system calls' numbers.
_ABIS: dict[str, tuple[int, int | None, str]] = {
    "x86_64": (
        0xC000003E,
        0x40000000,
        "clone=56 clone3=435 unshare=272 setns=308 mount=165 umount2=166 pivot_root=155 chroot=161 ptrace=101"
        " bpf=321 perf_event_open=298 userfaultfd=323 keyctl=250 add_key=248 request_key=249 io_uring_setup=425"
        " open_tree=428 move_mount=429 fsopen=430 fsconfig=431 fsmount=432 fspick=433 mount_setattr=442",
    ),
    "aarch64": (
        0xC00000B7,
        None,
        "clone=220 clone3=435 unshare=97 setns=268 mount=40 umount2=39 pivot_root=41 chroot=51 ptrace=117"
        " bpf=280 perf_event_open=241 userfaultfd=282 keyctl=219 add_key=217 request_key=218 io_uring_setup=425"
        " open_tree=428 move_mount=429 fsopen=430 fsconfig=431 fsmount=432 fspick=433 mount_setattr=442",
    ),
}


class FilterUnavailable(OSError):
    """No filter for this machine, or the kernel refused it: the cell is not run."""


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (this one by default) as an array of struct sock_filter."""
    machine = machine or platform.machine()
    if machine not in _ABIS:
        raise FilterUnavailable(f"no seccomp filter for {machine}: cells would be able to make namespaces")
    arch, foreign_from, table = _ABIS[machine]
    calls = {name: int(number) for name, _, number in (pair.partition("=") for pair in table.split())}
    eperm = _op(_RET_K, _ERRNO | errno.EPERM)
    ops = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, arch, 1, 0), eperm, _op(_LD_W_ABS, _NR)]
    if foreign_from is not None:
        ops += [_op(_JGE_K, foreign_from, 0, 1), eperm]
    for name in _REFUSED:
        ops += [_op(_JEQ_K, calls[name], 0, 1), eperm]
    ops += [_op(_JEQ_K, calls["clone3"], 0, 1), _op(_RET_K, _ERRNO | errno.ENOSYS)]
    ops += [_op(_JEQ_K, calls["clone"], 0, 3), _op(_LD_W_ABS, _ARG0), _op(_JSET_K, NAMESPACE_FLAGS, 0, 1), eperm]
    ops += [_op(_RET_K, _ALLOW)]
    return b"".join(ops)


def pipe() -> int:
    """A pipe's read end holding the program, for bubblewrap's ``--seccomp``; the caller closes it."""
    data = program()
    read, write = os.pipe()
    try:
        os.write(write, data)  # a few hundred bytes: well inside a pipe's buffer
    finally:
        os.close(write)
    return read


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install() -> None:
    """Put this process (and all it will start) under the filter; raises when the kernel refuses."""
    data = program()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    fprog = _Filter(len(data) // 8, data)
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0 or (
        libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0
    ):
        raise FilterUnavailable(ctypes.get_errno(), "the kernel refused the cells' seccomp filter")
