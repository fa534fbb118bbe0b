"""A backend's side of the launcher: privileged operations go to the launcher when this process is not root."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings

from sandboxes.backends.base import UnitSpec

from . import protocol


def launcher_socket() -> Path | None:
    """The launcher to ask, or None when this process does the privileged half itself.

    Root does it itself. Anyone else asks the launcher when its socket is there (and is refused by the
    backend's own check when it is not, with what to do).
    """
    if os.geteuid() == 0:
        return None
    path = Path(settings.SANDBOX_LAUNCHER_SOCKET)
    try:
        return path if path.exists() else None
    except OSError:
        return path  # there but not ours to see (a folder we may not enter): the call says why it fails


class ThroughLauncher:
    """Mixed in before a backend's own class (process, docker): each privileged method goes to the launcher if there is one.

    The launcher runs the very same backend as root, so a caller sees the same results and exceptions.
    """

    def units_need_root(self) -> bool:
        """Whether making this backend's units takes root (the process backend's unisolated mode does not)."""
        return True

    def _ask(self, op: str, **args: Any) -> tuple[bool, Any]:
        path = launcher_socket() if self.units_need_root() else None
        if path is None:
            return False, None
        return True, protocol.call(path, op, **args)

    def start(self, unit: UnitSpec) -> None:
        asked, _ = self._ask("start", unit=dataclasses.asdict(unit))
        if not asked:
            super().start(unit)  # type: ignore[misc]

    def stop(self, name: str) -> None:
        asked, _ = self._ask("stop", name=name)
        if not asked:
            super().stop(name)  # type: ignore[misc]

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        asked, kept = self._ask("stop_keeping", name=name, key=key)
        return kept if asked else super().stop_keeping(name, key=key)  # type: ignore[misc]

    def discard_kept(self, key: str) -> None:
        asked, _ = self._ask("discard_kept", key=key)
        if not asked:
            super().discard_kept(key)  # type: ignore[misc]

    def kept_exists(self, key: str) -> bool:
        asked, exists = self._ask("kept_exists", key=key)
        return bool(exists) if asked else super().kept_exists(key)  # type: ignore[misc]

    def kept_keys(self) -> list[str]:
        asked, keys = self._ask("kept_keys")
        return list(keys) if asked else super().kept_keys()  # type: ignore[misc]

    def poll(self, name: str) -> int | None:
        asked, status = self._ask("poll", name=name)
        return status if asked else super().poll(name)  # type: ignore[misc]

    def poll_many(self, names: Iterable[str]) -> dict[str, int | None]:
        names = list(names)
        asked, statuses = self._ask("poll_many", names=names)
        return dict(statuses) if asked else super().poll_many(names)  # type: ignore[misc]

    def list_units(self) -> list[str]:
        asked, names = self._ask("list_units")
        return list(names) if asked else super().list_units()  # type: ignore[misc]

    def processes(self, name: str) -> list[int]:
        asked, pids = self._ask("processes", name=name)
        return list(pids) if asked else super().processes(name)  # type: ignore[misc]
