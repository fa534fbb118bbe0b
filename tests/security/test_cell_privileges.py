"""Privileges from inside a cell: each attack a learner's code could try on the kernel, the host or its broker.

Performed from a real cell of a real unit (process backend: bubblewrap, the unit's uid,
its cgroups), one cell per attack, and each must be refused: a user namespace (the door
to every other namespace and to mounting), a network namespace, a tmpfs mount, capability
sets that are not empty, setuid binaries, ptrace or a signal to the unit's broker, the
broker's data folder. The broker still answers afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.backends import cgroups, disks
from sandboxes.backends.process import ProcessBackend
from tests.security.units import Unit, cell_found, unit_running

pytestmark = [pytest.mark.integration]

#: Namespaces a cell might make (linux/sched.h): a user namespace would give it every capability inside.
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000


@pytest.fixture(scope="module")
def unit():
    with unit_running(ProcessBackend(), "nats") as started:
        yield started


def _refused(outcome) -> bool:
    return outcome != "ok"


def test_a_cell_cannot_make_a_user_namespace(unit):
    found = cell_found(
        unit,
        f"""
        def call(result):
            return "ok" if result == 0 else os.strerror(ctypes.get_errno())
        r = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
        found["unshare -Ur"] = "ok" if r.returncode == 0 else r.stderr.strip()
        found["unshare(2)"] = call(libc.unshare({CLONE_NEWUSER}))
        # clone(2) with CLONE_NEWUSER | SIGCHLD: a child in a new user namespace leaves at once.
        pid = libc.syscall(56, {CLONE_NEWUSER} | 17, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)
        found["clone(2)"] = "ok" if pid > 0 else os.strerror(ctypes.get_errno())
        if pid > 0:
            os.waitpid(pid, 0)
        """,
    )
    print(found)
    assert all(_refused(outcome) for outcome in found.values()), found


def test_a_cell_cannot_make_a_network_namespace_nor_mount(unit):
    found = cell_found(
        unit,
        f"""
        def call(result):
            return "ok" if result == 0 else os.strerror(ctypes.get_errno())
        r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
        found["unshare -n"] = "ok" if r.returncode == 0 else r.stderr.strip()
        found["unshare(2) net"] = call(libc.unshare({CLONE_NEWNET}))
        found["unshare(2) mount"] = call(libc.unshare({CLONE_NEWNS}))
        os.makedirs("/tmp/m", exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp/m"], capture_output=True, text=True)
        found["mount -t tmpfs"] = "ok" if r.returncode == 0 else r.stderr.strip()
        found["mount(2)"] = call(libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None))
        """,
    )
    print(found)
    assert all(_refused(outcome) for outcome in found.values()), found


def test_a_cells_capabilities_are_empty_for_good(unit):
    found = cell_found(
        unit,
        """
        for line in open("/proc/self/status"):
            key, _, value = line.partition(":")
            if key.startswith("Cap") or key in {"NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups"}:
                found[key] = value.strip()
        """,
    )
    print(found)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(found[key], 16) == 0, f"{key} {found[key]}"
    assert found["NoNewPrivs"] == "1"
    assert found["Seccomp"] == "2", "no seccomp filter on the cell"
    assert "0" not in found["Uid"].split() and "0" not in found["Gid"].split(), found
    assert found["Groups"] == "", found


def test_setuid_binaries_give_a_cell_nothing(unit):
    """Every setuid file the cell can see is run; none of them may run as anyone but the cell."""
    found = cell_found(
        unit,
        """
        import stat, time
        me = os.getuid()
        for top in ("/usr", "/etc"):
            for folder, _, files in os.walk(top):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        mode = os.lstat(path).st_mode
                    except OSError:
                        continue
                    if not stat.S_ISREG(mode) or not mode & (stat.S_ISUID | stat.S_ISGID):
                        continue
                    # Started with its stdin held open, it waits (a password prompt) or ends; either way its
                    # effective ids are read from /proc while it lives.
                    try:
                        child = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    except PermissionError:
                        found[path] = "not executable by the cell"
                        continue
                    ids = set()
                    end = time.monotonic() + 0.5
                    while time.monotonic() < end and child.poll() is None:
                        try:
                            status = open(f"/proc/{child.pid}/status").read()
                        except OSError:
                            break
                        for line in status.splitlines():
                            if line.startswith(("Uid:", "Gid:")):
                                ids |= {int(x) for x in line.split()[1:]}
                    child.kill()
                    child.wait()
                    found[path] = sorted(ids)
        found["__mount_as_user"] = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True).returncode
        """,
    )
    print(found)
    binaries = {path: ids for path, ids in found.items() if not path.startswith("__")}
    assert "/usr/bin/su" in binaries and "/usr/bin/mount" in binaries, f"the host's setuid binaries were not seen: {found}"
    for path, ids in binaries.items():
        assert isinstance(ids, str) or 0 not in ids, f"{path} ran with root's ids {ids}"
    assert found["__mount_as_user"] != 0


def _broker_pids(unit: Unit) -> list[int]:
    agent = unit.backend._agent_pid(unit.name)
    pids = []
    for procs in cgroups.UnitCgroups(unit.backend.instance, unit.name).procs_files("main"):
        pids += [pid for pid in map(int, procs.read_text().split()) if pid != agent]
    assert pids, "no broker process found"
    return pids


def test_a_cell_cannot_trace_signal_or_see_its_broker(unit):
    broker = _broker_pids(unit)
    data = disks.data_dir(unit.backend.unit_dir(unit.name))
    found = cell_found(
        unit,
        f"""
        import signal
        me = os.getuid()
        # Pid 1 is bubblewrap's init of the cell's PID namespace (root): seen, but out of reach below.
        found["others in /proc"] = sorted(
            int(p) for p in os.listdir("/proc") if p.isdigit() and p != "1" and os.stat(f"/proc/{{p}}").st_uid != me
        )
        for pid in {broker} + [1]:
            try:
                os.kill(pid, signal.SIGKILL)
                found[f"kill {{pid}}"] = "ok"
            except OSError as error:
                found[f"kill {{pid}}"] = error.strerror
            # PTRACE_ATTACH
            result = libc.ptrace(16, pid, None, None)
            found[f"ptrace {{pid}}"] = "ok" if result == 0 else os.strerror(ctypes.get_errno())
        for path in ({str(data)!r}, {str(data.parent)!r}):
            try:
                found[path] = os.listdir(path)
            except OSError as error:
                found[path] = error.strerror
        """,
    )
    print(found)
    assert found["others in /proc"] == [], "the cell sees processes that are not its own"
    for key, outcome in found.items():
        if key.startswith(("kill", "ptrace")):
            assert outcome != "ok", f"{key}: {outcome}"
        elif key.startswith("/"):
            assert not isinstance(outcome, list), f"{key} listed from a cell: {outcome}"
    for pid in broker:
        assert Path(f"/proc/{pid}").exists(), f"broker process {pid} died"
    status, output, _ = unit.run(
        "import asyncio, os, nats\n"
        "async def main():\n"
        "    nc = await nats.connect(os.environ['NATS_URL'])\n"
        "    await nc.close()\n"
        "asyncio.run(main()); print('broker answers')"
    )
    assert status == 0 and "broker answers" in output, output


def test_the_filter_holds_without_bubblewrap_and_its_absence_refuses_thecell_found(monkeypatch):
    """setpriv's mode (the Docker backend) installs the filter itself; a machine without one gets no cell."""
    import platform
    import subprocess

    from sandboxes.agent import fail_closed, seccomp
    from sandboxes.agent.confinement import CellLimits, Confinement, ConfinementMissing

    # As root and with the filter installed before the exec: unshare is refused all the same.
    made = subprocess.run(["unshare", "-Ur", "true"], check=False, preexec_fn=seccomp.install, capture_output=True, text=True)
    assert made.returncode != 0 and "Operation not permitted" in made.stderr, made
    assert subprocess.run(["unshare", "-n", "true"], check=False, preexec_fn=seccomp.install).returncode != 0
    assert subprocess.run(["true"], check=False, preexec_fn=seccomp.install).returncode == 0  # the rest still runs

    walls = Confinement(limits=CellLimits(), uid=200_123, cgroup_procs=[])
    with pytest.raises(ConfinementMissing, match="seccomp"):
        walls.argv(["python3", "-c", "print(1)"])  # no filter passed: no command line
    monkeypatch.setattr(platform, "machine", lambda: "s390x")
    with pytest.raises(seccomp.FilterUnavailable):
        seccomp.program()
    refused = fail_closed.problems(isolated=True, confinement="bwrap", cell_uid=200_123)
    assert any("seccomp" in problem for problem in refused), refused
