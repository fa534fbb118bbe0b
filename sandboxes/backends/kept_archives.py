"""Kept data as archives on the platform's side: for backends whose units have no disk to keep (Kubernetes).

A stop that keeps asks the unit's agent for its broker's data (agent/kept_data.py) and files it here
under the learner's key, as ``<root>/.kept/<key>.tar.gz``, beside the process and Docker backends'
kept disk images (``.ext4``, disks.py). The archive is written as ``.part`` and takes its name only once
it has been read through to its end: a half-sent archive never replaces a good one. A start on it sends
it back to the new unit's agent and deletes it once the agent has unpacked it.

The folder must outlive the platform's processes, and web and worker must see the same one: on a
cluster, SANDBOX_ROOT is a volume both mount (deploy/kubernetes/base/kept-data.yaml).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync

from .. import agent_client
from .base import AgentAddress, UnitSpec
from .disks import KEPT, kept_keys

log = logging.getLogger(__name__)

SUFFIX = ".tar.gz"
PART = ".part"


class BrokenArchive(RuntimeError):
    """What came from the agent is not a whole archive."""


class KeptArchives:
    def __init__(self, root: Path, instance: str) -> None:
        self.root = root
        self.folder = root / KEPT
        self.instance = instance

    def path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"{key!r} is not a key of kept data")
        return self.folder / f"{key}{SUFFIX}"

    def incoming(self, key: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = self.path(key)
        return kept.with_name(kept.name + PART)

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
        return sorted(k for k in kept_keys(self.root, SUFFIX) if k.startswith(f"{self.instance}-"))


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


class KeptThroughAgent:
    """Kept state for a backend whose units have no disk to keep (Kubernetes): a stop that keeps asks the agent
    for its broker's data (``export``) and files it here; a start on kept data gives the unit ``--restore``
    (``UnitSpec.restore`` stays set) and, once its agent listens, :meth:`restore_kept` sends the archive,
    which the agent unpacks before its broker's first start. The backend sets ``kept`` in its __init__."""

    kept: KeptArchives

    if TYPE_CHECKING:

        def agent_address(self, name: str) -> AgentAddress: ...

        def stop(self, name: str) -> None: ...

    def kept_spec(self, unit: UnitSpec) -> UnitSpec:
        """``unit``, or ``unit`` without its restore when nothing (is left) to start on: a fresh broker."""
        if unit.restore and not self.kept.exists(unit.restore):
            return dataclasses.replace(unit, restore="")
        return unit

    def restore_kept(self, unit: UnitSpec) -> None:
        """Send the kept data to the unit's agent; then the unit runs on it, and it is no longer kept. An agent
        that refuses it (an archive it cannot unpack: its broker fails to start and says why; or a reused unit
        that took it already) ends it as well, as a failed start on a kept disk image does: the next start is
        fresh rather than failing again. An agent that does not answer fails the start; the data stays."""
        if not unit.restore or not self.kept.exists(unit.restore):
            return
        try:
            async_to_sync(agent_client.restore_data)(self.agent_address(unit.name), archive=self.kept.path(unit.restore))
        except ValueError as exc:
            log.warning(
                "kept data refused by the agent; discarded", extra={"unit": unit.name, "key": unit.restore, "error": str(exc)}
            )
        self.kept.discard(unit.restore)

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        """The agent stops its broker and sends its data, filed under ``key``; then the unit goes as in ``stop``.
        When the agent cannot send it (gone, or half way), nothing new is kept and what was kept stays."""
        incoming = self.kept.incoming(key)
        size: int | None = None
        try:
            async_to_sync(agent_client.export_data)(self.agent_address(name), into=incoming)
            size = self.kept.commit(incoming, key)
        except (agent_client.AgentUnavailable, BrokenArchive, OSError) as exc:
            log.warning("unit's data not kept", extra={"unit": name, "key": key, "error": str(exc)})
            incoming.unlink(missing_ok=True)
        self.stop(name)
        if size is not None:
            log.info("unit stopped, data kept", extra={"unit": name, "key": key, "bytes": size})
        return size

    def discard_kept(self, key: str) -> None:
        self.kept.discard(key)

    def kept_exists(self, key: str) -> bool:
        return self.kept.exists(key)

    def kept_keys(self) -> list[str]:
        return self.kept.keys()
