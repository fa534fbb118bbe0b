"""Units that live in folders under SANDBOX_ROOT, each with a capped data disk that may be kept: process and docker.

Both backends put a unit's agent socket and status in ``<SANDBOX_ROOT>/<unit>`` and its
broker's data on the unit's own filesystem (disks.py); stopping removes both, or keeps the
disk image under a learner's key for the next unit. A backend mixes :class:`UnitFolders`
in before :class:`~sandboxes.backends.base.SandboxBackend` and says, in ``_end``, how its
unit's processes stop.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sandboxes.agent import protocol

from . import disks


class UnitFolders:
    """The folder, disk and kept data of a backend's units; the backend sets ``root`` and ``instance``."""

    root: Path
    instance: str

    def _end(self, name: str) -> None:
        """Everything of stopping the unit but its disk and folder (the backend's own)."""
        raise NotImplementedError

    def _log(self) -> logging.Logger:
        # The backend's own logger, so a unit's stop is logged under the backend that stopped it.
        return logging.getLogger(type(self).__module__)

    def unit_dir(self, name: str) -> Path:
        return self.root / name

    def socket_path(self, name: str) -> Path:
        """The agent's socket, in the unit's folder on the host."""
        return self.unit_dir(name) / protocol.SOCKET_NAME

    def image_path(self, name: str) -> Path:
        """The file behind the unit's capped data folder."""
        return disks.image_path(self.root, name)

    def kept_path(self, key: str) -> Path:
        return disks.kept_path(self.root, key)

    def owns(self, name: str) -> bool:
        """Units are named <instance>-<sandbox id>; anything else on the host is not ours to touch."""
        instance, _, number = name.rpartition("-")
        return instance == self.instance and number.isdigit()

    def _folder_units(self) -> set[str]:
        """Names of the units that have a folder or a disk image (owned or not: the caller filters with :meth:`owns`)."""
        names: set[str] = set()
        if self.root.is_dir():
            names.update(p.name for p in self.root.iterdir() if p.is_dir())
        names.update(disks.unit_names(self.root))
        return names

    def _remove_folder(self, name: str) -> None:
        # Unmounted before the folder goes: rmtree would otherwise empty the mount and leave it busy.
        disks.remove(image=self.image_path(name), mount_point=disks.data_dir(self.unit_dir(name)))
        shutil.rmtree(self.unit_dir(name), ignore_errors=True)

    def stop(self, name: str) -> None:
        self._end(name)
        self._remove_folder(name)
        self._log().info("unit stopped", extra={"unit": name})

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        """Like stop(), but the unit's disk image is kept under ``key``; None without one (unisolated units)."""
        self._end(name)
        kept = disks.keep(image=self.image_path(name), mount_point=disks.data_dir(self.unit_dir(name)), kept=self.kept_path(key))
        shutil.rmtree(self.unit_dir(name), ignore_errors=True)
        self._log().info("unit stopped, data kept", extra={"unit": name, "key": key, "bytes": kept})
        return kept

    def discard_kept(self, key: str) -> None:
        disks.discard(self.kept_path(key))

    def kept_exists(self, key: str) -> bool:
        return self.kept_path(key).exists()

    def kept_keys(self) -> list[str]:
        return sorted(k for k in disks.kept_keys(self.root) if k.startswith(f"{self.instance}-"))
