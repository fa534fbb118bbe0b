"""Kept data as archives on the platform's side: for backends whose units have no disk to keep (Kubernetes).

A stop that keeps asks the unit's agent for its broker's data (agent/kept_data.py) and files it here
under the learner's key, as ``<root>/.kept/<key>.tar.gz``, beside the process and Docker backends'
kept disk images (``.ext4``, disks.py). The archive is written as ``.part`` and takes its name only once
it has been read through to its end: a half-sent archive never replaces a good one. A start on it sends
it back to the new unit's agent and deletes it once the agent has unpacked it.

The folder must outlive the platform's processes: on a cluster, the worker's SANDBOX_ROOT is a volume.
"""

from __future__ import annotations

import contextlib
import tarfile
from pathlib import Path

from .disks import KEPT

SUFFIX = ".tar.gz"
PART = ".part"


class BrokenArchive(RuntimeError):
    """What came from the agent is not a whole archive."""


class KeptArchives:
    def __init__(self, root: Path, instance: str) -> None:
        self.folder = root / KEPT
        self.instance = instance

    def path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"{key!r} is not a key of kept data")
        return self.folder / f"{key}{SUFFIX}"

    def incoming(self, key: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.path(key).with_name(self.path(key).name + PART)

    def commit(self, incoming: Path, key: str) -> int:
        """Check ``incoming`` is a whole archive, then make it the data kept under ``key``; returns its size."""
        try:
            verified(incoming)
            incoming.replace(self.path(key))
        finally:
            with contextlib.suppress(FileNotFoundError):
                incoming.unlink()
        return self.path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        names = (p.name.removesuffix(SUFFIX) for p in self.folder.iterdir() if p.name.endswith(SUFFIX))
        return sorted(k for k in names if k.startswith(f"{self.instance}-"))


def verified(archive: Path) -> None:
    """Read the whole gzipped tar (every member's header and data, and gzip's check at its end)."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        while extracted.read(1024 * 1024):
                            pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BrokenArchive(f"{archive.name} is not a whole archive: {exc}") from exc
