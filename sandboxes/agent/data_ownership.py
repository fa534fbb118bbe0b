"""Who owns the broker's data folder: handed to the broker's account before it starts, taken back by the next agent.

Cells run as another uid and may neither read nor change the broker's files. The agent
holds CAP_CHOWN but no CAP_FOWNER or CAP_DAC_*, which fixes the order of each walk below.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
from pathlib import Path

from sandboxes.brokers.base import LaunchSpec


def take_back(data: Path) -> None:
    """Make the agent the owner of everything under ``data`` again (undoing :func:`hand_over` of an earlier unit).

    With CAP_CHOWN and no CAP_DAC_*, a folder is taken before it is read: the walk goes top-down,
    so each folder is the agent's by the time it is listed. Links are changed themselves, never followed.
    """
    uid, gid = os.getuid(), os.getgid()
    os.chown(data, uid, gid)
    # As a fresh filesystem's root is (and as it stays until hand_over closes it again): a kind's
    # prepare may hand the folder to its own account first and still needs to pass through it.
    data.chmod(0o755)
    for root, dirs, files in os.walk(data):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def hand_over(data: Path, spec: LaunchSpec, default_user: str | int) -> LaunchSpec:
    """Give the broker's folder to the account it runs as (its kind's own, else ``default_user``), closed to cells.

    ``default_user`` is an account's name, or a bare uid (the process backend's unit of its own,
    with a group of the same number and no entry in /etc/passwd).

    Only a file's owner may change its mode, so the folder is taken back and closed first,
    and handed over last; its group stays the agent's, which lets the agent (and the
    broker's start, which enters the folder before it changes uid) pass through. Links are
    changed themselves, never followed.
    """
    chosen = spec.user or default_user
    if isinstance(chosen, int):
        uid = gid = chosen
    else:
        account = pwd.getpwnam(chosen)
        uid, gid = account.pw_uid, account.pw_gid
    os.chown(data, os.getuid(), os.getgid())
    data.chmod(0o710)
    for root, dirs, files in os.walk(data, topdown=False):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    os.chown(data, uid, os.getgid())
    return dataclasses.replace(spec, user=chosen)
