"""What the agent mounts in its unit's own mount namespace: the cgroup tree.

``ip netns exec`` gives the agent a mount namespace of its own (a slave of the
host's, so nothing mounted here is seen outside) and mounts a fresh /sys there,
on which /sys/fs/cgroup is empty: the cells' cgroup, which the backend made,
cannot be joined until the cgroup tree is mounted again (show_cgroups). Without
it the cells ran in the unit's main group, with neither their own memory, pids
nor CPU limit.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

log = logging.getLogger("sandboxes.agent")

CGROUP_ROOT = Path("/sys/fs/cgroup")


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
