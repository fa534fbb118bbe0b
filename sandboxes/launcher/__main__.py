"""python -m sandboxes.launcher [--socket PATH] [--group NAME]: serve the process backend's privileged half as root."""

from __future__ import annotations

import argparse
import grp
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

    from sandboxes.backends.process import ProcessBackend

    from .server import LauncherServer

    parser = argparse.ArgumentParser(prog="sandboxes.launcher")
    parser.add_argument("--socket", type=Path, default=Path(settings.SANDBOX_LAUNCHER_SOCKET))
    parser.add_argument("--group", default=settings.SANDBOX_PLATFORM_GROUP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the unit launcher makes namespaces, cgroups and disks for the units: run it as root")
    try:
        gid = grp.getgrnam(args.group).gr_gid
    except KeyError:
        sys.exit(f"no group {args.group!r} (SANDBOX_PLATFORM_GROUP): `make install` creates it with the platform's user")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    server = LauncherServer(args.socket, gid=gid, backend=ProcessBackend())
    logging.getLogger("sandboxes.launcher").info("listening", extra={"socket": str(args.socket), "group": args.group})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
