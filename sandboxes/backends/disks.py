"""A hard size cap for a unit's data: a sparse file, formatted ext4, loop-mounted at the unit's data folder.

A broker told to keep everything (a Kafka topic with ``retention.bytes=-1``, a
RabbitMQ queue nobody reads) can then fill its own filesystem and nothing
else: the host keeps its free space, whatever the learner sends. The file is
sparse, so a unit costs the host what its broker really stored, never more
than the cap. Made when the unit starts, unmounted and deleted when it stops;
a unit whose capped filesystem cannot be made does not start (fail closed).

A learner's stop may keep the image instead (:func:`keep`): it is unmounted and
moved to ``.kept/<key>.ext4``, and the next start of that learner's broker of
the same kind mounts it again (``create(restore=...)``) rather than a fresh one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Where the images live, beside the units' folders (a dot folder is never taken for a unit).
IMAGES = ".disks"
#: Where kept images wait for their learner's next start; reconciliation of units never looks here.
KEPT = ".kept"
SUFFIX = ".ext4"
#: The folder of a unit the cap covers: everything the broker stores (see agent/broker_supervisor.py).
DATA = "data"
#: The smallest cap a unit may be given: ext4 itself and a broker's first files take several MB.
MIN_MB = 64
#: No journal (the journal would take 4 MB of a small cap; a kept image is only ever unmounted
#: cleanly, and is checked with e2fsck before it is mounted again), no reserve for root (the broker may run as root), 4 KiB blocks, no discard on mkfs.
MKFS = ("mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", "-O", "^has_journal", "-E", "nodiscard,lazy_itable_init=1")
#: No device files or set-uid programs on it; exec stays allowed (the JVM maps native libraries from its tmpdir there).
MOUNT_OPTIONS = "loop,nosuid,nodev"
OCTAL = re.compile(r"\\([0-7]{3})")

NO_DISK = (
    "The sandbox's storage with its size cap ({size_mb} MB) could not be made ({error}). "
    "The sandbox is not started without it: a broker without a cap could fill the server's disk. "
    "The process backend needs root, loop devices (/dev/loop-control) and mkfs.ext4 (Debian's e2fsprogs)."
)


def cap_mb(broker: str) -> int:
    """The size cap of a unit's data for ``broker`` (SANDBOX_DISK_MB, else its "default"), in MB."""
    from django.conf import settings

    caps = settings.SANDBOX_DISK_MB
    return int(caps.get(broker, caps.get("default", 256)))


class DiskUnavailable(RuntimeError):
    """The unit's capped filesystem could not be made; the unit must not start."""


def image_path(root: Path, name: str) -> Path:
    return root / IMAGES / f"{name}{SUFFIX}"


def data_dir(unit_dir: Path) -> Path:
    return unit_dir / DATA


def mounted(path: Path) -> bool:
    """Whether something is mounted at ``path`` (read from the kernel, not guessed from st_dev)."""
    wanted = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            # The fifth field is the mount point, with space, tab, newline and backslash as octal escapes.
            point = OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split(" ")[4])
            if point == wanted:
                return True
    return False


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise OSError(f"{' '.join(argv[:2])}: {(result.stderr or result.stdout).strip()[-500:]}")


def kept_path(root: Path, key: str) -> Path:
    """Where the image kept under ``key`` waits for its next start."""
    return root / KEPT / f"{key}{SUFFIX}"


def create(*, image: Path, mount_point: Path, size_mb: int, restore: Path | None = None) -> None:
    """Make ``image`` (``size_mb``, sparse), format it and mount it at ``mount_point``; safe to call again.

    With ``restore`` (a kept image) that image is moved into place and mounted instead of a fresh
    one; when it is gone already, an ``image`` in place is taken for it (a start that died after the
    move). Raises :class:`DiskUnavailable` (and leaves nothing behind) when any step fails.
    """
    if mounted(mount_point):
        return
    try:
        if size_mb < MIN_MB:
            raise ValueError(f"a cap of {size_mb} MB is below the smallest, {MIN_MB} MB")
        image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if restore is not None and restore.exists():
            os.replace(restore, image)
        if restore is not None and image.exists():
            # Unmounted cleanly when kept; a preen finds (and repairs) the rest of what a crash can do.
            result = subprocess.run(["e2fsck", "-p", str(image)], capture_output=True, text=True, timeout=120, check=False)
            if result.returncode > 1:  # 1: errors corrected
                raise OSError(f"e2fsck: {(result.stderr or result.stdout).strip()[-500:]}")
        else:
            with contextlib.suppress(FileNotFoundError):
                image.unlink()  # half-made by a start that died: a fresh one is cheap
            with image.open("wb") as sparse:
                sparse.truncate(size_mb * 1024 * 1024)
            _run([*MKFS, str(image)])
        mount_point.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(image), str(mount_point)])
        with contextlib.suppress(FileNotFoundError):
            (mount_point / "lost+found").rmdir()  # empty on a fresh filesystem; a broker wants its folder to itself
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        remove(image=image, mount_point=mount_point)
        raise DiskUnavailable(NO_DISK.format(size_mb=size_mb, error=exc)) from exc
    log.info("unit disk made", extra={"image": str(image), "size_mb": size_mb})


def remove(*, image: Path, mount_point: Path, timeout: float = 10.0) -> None:
    """Unmount and delete; gone already is success. Call once the unit's processes are gone.

    A mount still busy after ``timeout`` is detached lazily: the kernel frees it (and the
    loop device, which the mount set to clear itself) when its last user is gone.
    """
    busy = _unmount(mount_point, timeout=timeout)
    if busy is not None:
        log.warning("unit disk busy; detached lazily", extra={"mount_point": str(mount_point), "error": busy})
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30, check=False)
    with contextlib.suppress(FileNotFoundError):
        image.unlink()


def _unmount(mount_point: Path, *, timeout: float) -> str | None:
    """Unmount, retrying while busy until ``timeout``; None once it is not mounted, else umount's last complaint."""
    deadline = time.monotonic() + timeout
    while mounted(mount_point):
        result = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            return None
        if time.monotonic() > deadline:
            return result.stderr
        time.sleep(0.1)
    return None


def keep(*, image: Path, mount_point: Path, kept: Path, timeout: float = 10.0) -> int | None:
    """Unmount ``image`` and move it to ``kept`` (replacing what was kept there); returns the bytes it takes.

    Returns None, and removes the image, when it cannot be unmounted within ``timeout``: a
    lazily detached filesystem may still be written, so it is never mounted again.
    """
    busy = _unmount(mount_point, timeout=timeout)
    if busy is not None:
        log.warning("unit disk busy; not kept", extra={"mount_point": str(mount_point), "error": busy})
        remove(image=image, mount_point=mount_point, timeout=0)
        return None
    if not image.exists():
        return None
    kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.replace(image, kept)
    log.info("unit disk kept", extra={"image": str(kept)})
    return allocated_bytes(kept)


def discard(kept: Path) -> None:
    """Delete a kept image; gone already is success."""
    with contextlib.suppress(FileNotFoundError):
        kept.unlink()


def kept_keys(root: Path, suffix: str = SUFFIX) -> set[str]:
    """Keys of the data kept under ``root`` as files ending in ``suffix`` (the images; kept_archives.py's
    archives lie beside them), for reconciliation with their records."""
    folder = root / KEPT
    if not folder.is_dir():
        return set()
    return {p.name.removesuffix(suffix) for p in folder.iterdir() if p.name.endswith(suffix)}


def unit_names(root: Path) -> set[str]:
    """Names of units that have an image (for reconciliation: a crash may leave one without its folder)."""
    folder = root / IMAGES
    if not folder.is_dir():
        return set()
    return {p.name.removesuffix(SUFFIX) for p in folder.iterdir() if p.name.endswith(SUFFIX)}


def allocated_bytes(image: Path) -> int:
    """What the image really takes on the host's disk (its blocks, not its length): at most the cap."""
    try:
        return image.stat().st_blocks * 512
    except FileNotFoundError:
        return 0
