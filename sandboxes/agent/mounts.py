"""What the agent mounts in its unit's own mount namespace: the cgroup tree, the install cache and the cells' /tmp.

``ip netns exec`` gives the agent a mount namespace of its own (a slave of the
host's, so nothing mounted here is seen outside) and mounts a fresh /sys there,
on which /sys/fs/cgroup is empty: the cells' cgroup, which the backend made,
cannot be joined until the cgroup tree is mounted again (show_cgroups). Without
it the cells ran in the unit's main group, with neither their own memory, pids
nor CPU limit.

The install step keeps Kafka, ActiveMQ and NATS in its cache, by default under
``/root`` (mode 0700): a broker that no longer runs as root could not even open
its own jars. Inside the unit's mount namespace (``ip netns exec`` gives the
agent one, a slave of the host's, so nothing here is seen outside) the agent
binds the cache read-only into the unit's folder and points
``BROKER_ACADEMY_CACHE`` there, before the broker's kind computes its paths.
Root's home stays closed; the broker sees the cache and nothing else of it.

The cells' /tmp (also their HOME) is one tmpfs per unit (:func:`make_cells_tmp`), which
bubblewrap binds at /tmp for every cell run and the terminal's shell: what one cell writes
there the next cell and the terminal read, as in a Jupyter kernel's container, until the
unit stops. It lives in memory (charged to the cells' cgroup), is capped by its size, is
seen only in this mount namespace (no other unit, nor the host, can open it) and goes
with the namespace when the unit's last process ends.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from sandboxes.brokers import versions

log = logging.getLogger("sandboxes.agent")

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Not "tools": the terminal keeps its scripts there.
CACHE_NAME = "install-cache"
#: The folder (root's, 0700: the unit's broker may not pass) holding the mount point of the cells' /tmp.
CELLS_TMP_NAME = "cells-tmp"


def reachable_by_others(path: Path) -> bool:
    """Whether every folder on the way to ``path`` lets anyone pass (o+x)."""
    for folder in [*reversed(path.parents), path]:
        try:
            if not os.stat(folder).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _propagates(path: Path) -> bool:
    """Whether a mount made under ``path`` would be copied to peers (its mount is shared)."""
    best, shared = "", True
    resolved = str(path.resolve())
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            point = fields[4]
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best = point
                optional = fields[6 : fields.index("-")]
                shared = any(tag.startswith("shared:") for tag in optional)
    return shared


def show_cgroups(procs_files: list[Path]) -> None:
    """Make the cgroup.procs files the cells join reachable here; ``RuntimeError`` when they cannot be.

    v2: the unified tree at /sys/fs/cgroup. v1: a tmpfs there and each hierarchy the files
    name, mounted with the controllers it has on this host (as /proc/self/cgroup lists them).
    """
    if all(path.exists() for path in procs_files):
        return
    if _propagates(CGROUP_ROOT):
        raise RuntimeError(f"the cells' cgroups are not visible and {CGROUP_ROOT} is the host's own: not mounting over it")
    hierarchies = {}  # controller -> the hierarchy's controllers, as the kernel names them ("cpu,cpuacct")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, _ = line.split(":", 2)
        for controller in controllers.split(","):
            if controller and not controller.startswith("name="):
                hierarchies[controller] = controllers
    wanted = {path.relative_to(CGROUP_ROOT).parts[0] for path in procs_files}
    if not wanted & set(hierarchies):
        _mount("-t", "cgroup2", "cgroup2", str(CGROUP_ROOT))
    else:
        _mount("-t", "tmpfs", "-o", "mode=755,size=64k", "cgroup-root", str(CGROUP_ROOT))
        for controller in sorted(wanted):
            if controller not in hierarchies:
                raise RuntimeError(f"no cgroup v1 hierarchy has the {controller} controller")
            mounted = CGROUP_ROOT / hierarchies[controller]
            if not mounted.exists():
                mounted.mkdir()
                _mount("-t", "cgroup", "-o", hierarchies[controller], "cgroup", str(mounted))
            if mounted.name != controller:
                (CGROUP_ROOT / controller).symlink_to(mounted.name)
    missing = [str(path) for path in procs_files if not path.exists()]
    if missing:
        raise RuntimeError(f"the cells' cgroups cannot be joined: {', '.join(missing)} not found")
    log.info("cgroup tree mounted for the cells: %s", ", ".join(sorted(wanted)))


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], check=False, capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        raise RuntimeError(f"mount {' '.join(args)}: {result.stderr.strip()}")


def reveal_cache(unit_dir: Path) -> None:
    """Bind the install cache read-only at ``unit_dir/install-cache`` when another uid could not reach it where it is.

    Raises ``RuntimeError`` when the bind fails: the broker would then fail to start
    in a way harder to read (a missing jar as a stranger), so the agent says why here.
    """
    cache = versions.cache_dir()
    if not cache.is_dir() or reachable_by_others(cache):
        return
    target = unit_dir / CACHE_NAME
    if _propagates(unit_dir):
        # A bind under a shared mount would reach the host's table and outlive the unit; a unit's
        # namespace (ip netns exec makes it a slave of the host's) keeps it to itself.
        raise RuntimeError(f"{cache} is closed to other accounts and the agent has no mount namespace of its own to show it in")
    target.mkdir(mode=0o755, exist_ok=True)
    result = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(cache), str(target)], check=False, capture_output=True, text=True, timeout=20
    )
    if result.returncode != 0:
        raise RuntimeError(f"cannot show the broker's programs ({cache}) to its unprivileged account: {result.stderr.strip()}")
    # A read-only bind needs a remount on older util-linux; harmless when it is already read-only.
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=False, capture_output=True, timeout=20)
    os.environ["BROKER_ACADEMY_CACHE"] = str(target)
    log.info("install cache %s shown to the broker at %s", cache, target)


def make_cells_tmp(unit_dir: Path, *, size_bytes: int) -> Path:
    """Mount the unit's one /tmp for its cells and terminal; returns the mount point, which bubblewrap binds at /tmp.

    A tmpfs of ``size_bytes`` with /tmp's own mode (1777, root's, sticky: the cells may not rename
    the folders bubblewrap makes there for binds below /tmp, and a host path under /tmp stays as
    bound), nosuid and nodev, below a folder only root may enter. Raises ``RuntimeError`` when it
    cannot be made here without reaching the host's mount table: the cells are not run without it.
    """
    closed = unit_dir / CELLS_TMP_NAME
    target = closed / "tmp"
    closed.mkdir(mode=0o700, exist_ok=True)
    closed.chmod(0o700)
    target.mkdir(mode=0o700, exist_ok=True)
    if _propagates(target):
        # A mount under a shared mount would reach the host's table (and other units) and outlive the unit.
        raise RuntimeError("the cells' /tmp cannot be made: the agent has no mount namespace of its own")
    _mount("-t", "tmpfs", "-o", f"size={size_bytes},mode=1777,nosuid,nodev", "cells-tmp", str(target))
    log.info("cells' /tmp mounted at %s (%d MiB)", target, size_bytes // 2**20)
    return target
