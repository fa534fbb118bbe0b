"""The agent's ``export`` and ``restore`` ops: a broker's data leaves with its unit and comes back to a new one.

For backends whose units have no disk of their own to keep: a Kubernetes pod's data folder is an
emptyDir, gone with the pod. The process and Docker backends keep the unit's disk image instead.

- ``{"op": "export"}``: the broker stops (its files at rest, as at a shutdown), then the answer is
  ``{"type": "archive"}`` followed by the data folder as a gzipped tar, to the end of the connection;
  the agent then ends, as after ``shutdown``.
- ``{"op": "restore", "bytes": N}`` then N bytes of such an archive, to an agent started with
  ``--restore`` that waits for it before its broker's first start: unpacked into the empty data folder,
  folders and regular files only, each inside it (no absolute paths, no "..", no links, no devices, no
  owners or modes from the archive), answered ``{"ok": true}`` or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
import tarfile
import threading
from pathlib import Path
from typing import Any

from . import protocol
from .broker_supervisor import BrokerSupervisor

log = logging.getLogger("sandboxes.agent")

CHUNK = 256 * 1024
#: What the archive is called on its way in, beside the data folder (the unit's disk, not the /tmp tmpfs).
INCOMING = "restore.tar.gz"


class RestoreError(RuntimeError):
    """An archive that could not be unpacked: the broker starts on nothing rather than on half of it."""


async def serve_export(writer: asyncio.StreamWriter, *, broker: BrokerSupervisor, done: asyncio.Event) -> None:
    """Stop the broker, send its data folder, end the agent."""
    await broker.stop()
    data = broker.unit_dir / "data"
    await protocol.send(writer, {"type": "archive"})
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()

    def pack() -> None:
        # Whatever stops it (the platform hanging up fails the next write), the pipe closes and the send ends;
        # an archive cut short is refused by the platform (kept_archives.verified).
        try:
            with (
                os.fdopen(write_fd, "wb") as sink,
                gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1) as zipped,
                tarfile.open(fileobj=zipped, mode="w|") as archive,
            ):
                for entry in sorted(data.iterdir()) if data.is_dir() else []:
                    if entry.name != "lost+found":
                        archive.add(entry, arcname=entry.name, filter=_no_links)
        except Exception:
            log.warning("the data could not be sent whole", exc_info=True)

    packer = threading.Thread(target=pack, name="export", daemon=True)
    packer.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            while chunk := await loop.run_in_executor(None, source.read, CHUNK):
                writer.write(chunk)
                await writer.drain()
    finally:
        await loop.run_in_executor(None, packer.join)
        done.set()


def _no_links(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Folders and files only, as a restore takes them: a broker's links are the agent's to make again (RabbitMQ's
    ``plugins`` folder holds links to the system's Erlang applications, remade at every start)."""
    return member if member.isdir() or member.isreg() else None


async def receive_restore(request: dict[str, Any], reader: asyncio.StreamReader, *, data: Path) -> None:
    """Read the archive the request announces and unpack it into ``data``; raises RestoreError."""
    size = request.get("bytes")
    if not isinstance(size, int) or size < 0:
        raise RestoreError("restore needs the archive's size in bytes")
    incoming = data.parent / INCOMING
    try:
        with incoming.open("wb") as sink:
            left = size
            while left:
                chunk = await reader.read(min(CHUNK, left))
                if not chunk:
                    raise RestoreError(f"the archive ended after {size - left} of {size} bytes")
                sink.write(chunk)
                left -= len(chunk)
        await asyncio.get_running_loop().run_in_executor(None, _unpack, incoming, data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            incoming.unlink()


def _unpack(archive: Path, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                _unpack_member(tar, member, data)
    except (tarfile.TarError, OSError, EOFError, RestoreError) as exc:
        for entry in data.iterdir():  # nothing of a half-unpacked archive is left for the broker
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        raise RestoreError(f"the kept data could not be unpacked: {exc}") from exc


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, data: Path) -> None:
    """One member, as tarfile's "data" filter would allow it and stricter (the images' Python predates the
    filter): a relative path that stays inside ``data``; a folder or a regular file, nothing else (brokers keep
    no links or devices, so an archive that has one was not made by an export); modes of our own, no owners."""
    parts = Path(member.name).parts
    if not parts or Path(member.name).is_absolute() or ".." in parts:
        raise RestoreError(f"{member.name!r} is not a path inside the data folder")
    target = data.joinpath(*parts)
    if member.isdir():
        target.mkdir(mode=0o750, parents=True, exist_ok=True)
        return
    if not member.isreg():
        raise RestoreError(f"{member.name!r} is neither a folder nor a file")
    target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if target.is_symlink() or target.parent.resolve() != data.resolve().joinpath(*parts[:-1]):
        raise RestoreError(f"{member.name!r} is not a path inside the data folder")
    source = tar.extractfile(member)
    if source is None:
        raise RestoreError(f"{member.name!r} has no data")
    with source, open(target, "xb") as sink:  # "x": never through something already there
        shutil.copyfileobj(source, sink, CHUNK)
    os.chmod(target, 0o640)
