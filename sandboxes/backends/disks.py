"""A hard size cap for a unit's data: a sparse file, formatted ext4, loop-mounted at the unit's data folder.

A broker told to keep everything (a Kafka topic with ``retention.bytes=-1``, a
RabbitMQ queue nobody reads) can then fill its own filesystem and nothing
else: the host keeps its free space, whatever the learner sends. The file is
sparse, so a unit costs the host what its broker really stored, never more
than the cap. Made when the unit starts, unmounted and deleted when it stops;
a unit whose capped filesystem cannot be made does not start (fail closed).
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
SUFFIX = ".ext4"
#: The folder of a unit the cap covers: everything the broker stores (see agent/server.py).
DATA = "data"
#: The smallest cap a unit may be given: ext4 itself and a broker's first files take several MB.
MIN_MB = 64
#: No journal (a sandbox's data is thrown away at stop, and the journal would take 4 MB of a small
#: cap), no reserve for root (the broker may run as root), 4 KiB blocks, no discard on mkfs.
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


def create(*, image: Path, mount_point: Path, size_mb: int) -> None:
    """Make ``image`` (``size_mb``, sparse), format it and mount it at ``mount_point``; safe to call again.

    Raises :class:`DiskUnavailable` (and leaves nothing behind) when any step fails.
    """
    if mounted(mount_point):
        return
    try:
        if size_mb < MIN_MB:
            raise ValueError(f"a cap of {size_mb} MB is below the smallest, {MIN_MB} MB")
        image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    deadline = time.monotonic() + timeout
    while mounted(mount_point):
        result = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            break
        if time.monotonic() > deadline:
            log.warning("unit disk busy; detached lazily", extra={"mount_point": str(mount_point), "error": result.stderr})
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30, check=False)
            break
        time.sleep(0.1)
    with contextlib.suppress(FileNotFoundError):
        image.unlink()


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
