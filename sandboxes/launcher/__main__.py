"""python -m sandboxes.launcher [--socket PATH]: serve the privileged half of the configured backend (process or docker) as root."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "courseplatform.settings.development")
    import django

    django.setup()
    from django.conf import settings

    from sandboxes.backends import get_backend
    from sandboxes.backends.process import platform_gid
    from sandboxes.backends.unit_folders import UnitFolders

    from .client import ThroughLauncher
    from .server import LauncherServer

    parser = argparse.ArgumentParser(prog="sandboxes.launcher")
    parser.add_argument("--socket", type=Path, default=Path(settings.SANDBOX_LAUNCHER_SOCKET))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the unit launcher makes namespaces, cgroups, disks and containers for the units: run it as root")
    # The group the agents' sockets are given (ProcessBackend.start): the launcher's socket goes to the same one.
    gid = platform_gid()
    if gid is None:
        sys.exit(f"no group {settings.SANDBOX_PLATFORM_GROUP!r} (SANDBOX_PLATFORM_GROUP): `make install` creates it")

    # The backend the platform's settings name: the launcher and the platform it serves read the same ones.
    backend = get_backend()
    if not (isinstance(backend, ThroughLauncher) and isinstance(backend, UnitFolders)):
        sys.exit(f"SANDBOX_BACKEND={settings.SANDBOX_BACKEND}: its units need no unit launcher (only process and docker do)")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    server = LauncherServer(args.socket, gid=gid, backend=backend)
    logging.getLogger("sandboxes.launcher").info(
        "listening",
        extra={"socket": str(args.socket), "group": settings.SANDBOX_PLATFORM_GROUP, "backend": settings.SANDBOX_BACKEND},
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
