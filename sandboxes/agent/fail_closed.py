"""Fail closed: the agent refuses to start a unit whose cells could not be confined.

A cell is confined by four ingredients: bubblewrap (or, in a container, setpriv
alone), the unit's unprivileged uid, the cells' cgroup, and the seccomp filter
for this machine's system calls (seccomp.py). The cell runner used
to fall back when one was missing (no bwrap: the cell ran as the agent, i.e.
root); a unit the backend means to isolate is now refused before its broker
starts, with the reason as the unit's error, and no learner code runs.

The unisolated development mode (SANDBOX_ALLOW_UNISOLATED, no uid and no cgroups
given) is left as it is: it says loudly what it is and is refused in production.
"""

from __future__ import annotations

import os
import shutil

from . import seccomp

SETPRIV = "/usr/bin/setpriv"


def problems(*, isolated: bool, confinement: str, cell_uid: int | None) -> list[str]:
    """What keeps cells from being confined as the backend asked; empty when nothing does.

    ``isolated``: the backend gave a uid or cgroups, i.e. it means the cells to be confined.
    """
    if not isolated:
        return []
    found = []
    if os.geteuid() != 0:
        found.append("the agent is not root: it cannot switch cells to the unit's uid")
    if cell_uid is None or cell_uid == 0:
        found.append(f"no unprivileged uid for the cells (got {cell_uid}): they would run as root")
    if not os.access(SETPRIV, os.X_OK):
        found.append(f"{SETPRIV} not found: cells could not drop root")
    try:
        seccomp.program()
    except seccomp.FilterUnavailable as error:
        found.append(str(error))
    if confinement == "bwrap" and shutil.which("bwrap") is None:
        found.append("bubblewrap (bwrap) not found on PATH: cells would run without their namespaces and read-only root")
    return found
