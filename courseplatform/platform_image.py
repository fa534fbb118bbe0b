"""Build the images of deploy/kubernetes/ (the platform, Postgres, Redis) and push them to a cluster's registry.

    python -m courseplatform.platform_image [--registry HOST:PORT] [--force] [NAME ...]

Each image ``broker-academy/<name>`` (platform, platform-postgres, platform-redis) is built like the sandbox images (sandboxes/images/build.py):
on the local ``debian:bookworm-slim`` that scripts/docker-base.sh makes with debootstrap, from
``deploy/<name>.Dockerfile``, and tagged with the hash of all that goes in, so a run with nothing
changed builds nothing. The platform's holds this checkout's code and wheels that the host's pip
makes of requirements.txt's runtime section (everything above ``RUNTIME_END``); Postgres and Redis
are Debian's packages. With ``--registry`` each is then flattened into one folder (with an
``/entrypoint`` that sets the image's environment) and pushed by ``scripts/k8s-lab.sh push-image``,
unless the registry has that tag already. Prints one ``NAME=REFERENCE`` line per image.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from sandboxes.images.build import DEBIAN, NO_DEBIAN, NO_ENGINE, ROOT, BuildFailed, Context, ensure
from sandboxes.images.registry import export_into, manifest_exists, side_by_side

DEPLOY = ROOT / "deploy"
#: Image name -> the files beside its Dockerfile in deploy/ that its context holds (executable).
#: (Not "broker-academy/redis": that is the Redis Streams sandbox kind's image.)
IMAGES = {"platform": (), "platform-postgres": ("postgres-entrypoint.sh",), "platform-redis": ("redis-entrypoint.sh",)}
LAB_SCRIPT = ROOT / "scripts" / "k8s-lab.sh"
#: requirements.txt's first line that is not needed at run time (tests, benchmarks, lint follow it).
RUNTIME_END = "# Tests, benchmarks, lint"
#: Debian 12's Python is 3.11.2, below which redis-py needs async-timeout (the host's Python may be
#: newer); pip installs the wheels in the image (sandboxes/images/requirements.txt pins the same).
IMAGE_ONLY_REQUIREMENTS = ("async-timeout==5.0.1", "pip==26.3")
#: What of the checkout the platform runs: no tests, no benchmarks, no local state.
SOURCES = ("manage.py", "courseplatform", "lessons", "sandboxes", "templates", "static", "locale")


def runtime_requirements() -> str:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    try:
        end = lines.index(RUNTIME_END)
    except ValueError:
        raise BuildFailed(f"requirements.txt has no line {RUNTIME_END!r} that ends its runtime section") from None
    return "\n".join([*lines[:end], *IMAGE_ONLY_REQUIREMENTS, ""])


def add_wheels(context: Context) -> None:
    """Wheels of the runtime requirements, by the host's pip (its cache, or PyPI); the image installs them offline."""
    with tempfile.TemporaryDirectory(prefix="ba-platform-wheels-") as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text(context.files["requirements.txt"].decode())
        wheels = Path(folder) / "wheels"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), "--requirement", str(requirements)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildFailed(f"pip wheel failed:\n{result.stderr[-2000:]}")
        context.add_path("wheels", wheels)


def repository(name: str) -> str:
    return f"broker-academy/{name}"


def build(client: docker.DockerClient, name: str, *, force: bool = False) -> str:
    """The image of this checkout, built when missing; returns ``broker-academy/<name>:<hash>``."""
    try:
        debian = client.images.get(DEBIAN)
    except ImageNotFound:
        raise BuildFailed(NO_DEBIAN) from None
    context = Context()
    context.add("Dockerfile", (DEPLOY / f"{name}.Dockerfile").read_bytes())
    for extra in IMAGES[name]:
        context.add(extra, (DEPLOY / extra).read_bytes(), executable=True)
    if name == "platform":
        context.add("requirements.txt", runtime_requirements().encode())
        for source in SOURCES:
            context.add_path(f"app/{source}", ROOT / source)
    digest = context.digest(debian.id)
    complete = add_wheels if name == "platform" else None
    return ensure(
        client, repository=repository(name), context=context, digest=digest, buildargs={}, force=force, complete=complete
    )


def flatten(client: docker.DockerClient, image: str, folder: Path) -> None:
    """The image's files in ``folder``, and an ``/entrypoint`` that sets its environment and runs its arguments."""
    attrs = client.images.get(image).attrs["Config"]
    export_into(client, image, folder)
    exports = "".join(f"export {shlex.quote(item)}\n" for item in attrs.get("Env") or [])
    workdir = shlex.quote(attrs.get("WorkingDir") or "/")
    entrypoint = folder / "entrypoint"
    entrypoint.write_text(
        "#!/bin/sh\n# The image's environment and folder (a pushed folder keeps neither); then the command.\n"
        f'{exports}cd {workdir}\nexec "$@"\n'
    )
    entrypoint.chmod(0o755)


def push(client: docker.DockerClient, image: str, registry: str) -> str:
    """``image`` in ``registry`` under the same tag (pushed only when missing); returns the reference."""
    repo, _, tag = image.rpartition(":")
    if not manifest_exists(registry, repo, tag):
        with tempfile.TemporaryDirectory(prefix="ba-platform-rootfs-", dir="/var/tmp") as folder:
            flatten(client, image, Path(folder))
            result = subprocess.run([str(LAB_SCRIPT), "push-image", folder, image], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BuildFailed(f"push-image {image} failed:\n{result.stdout}{result.stderr}")
    return f"{registry}/{image}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m courseplatform.platform_image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="HOST:PORT of the registry the cluster pulls from (the lab's: 10.251.0.1:5000)")
    parser.add_argument("--force", action="store_true", help="build again even when an image of the same sources exists")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"images to build (default: all of {', '.join(IMAGES)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(IMAGES))
    if unknown:
        parser.error(f"unknown images: {', '.join(unknown)}")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        print(NO_ENGINE.format(error=exc), file=sys.stderr)
        return 1
    refs: dict[str, str] = {}
    # The builds' output goes to stderr: stdout is the NAME=REFERENCE lines, for scripts.
    try:
        for name in args.names or IMAGES:
            started = time.monotonic()
            with contextlib.redirect_stdout(sys.stderr):
                refs[name] = build(client, name, force=args.force)
            print(f"{refs[name]}: built in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if args.registry:
            started = time.monotonic()
            pushed = side_by_side(partial(push, registry=args.registry), list(refs.values()), timeout=600)
            refs = dict(zip(refs, pushed, strict=True))
            print(f"{', '.join(refs.values())}: pushed in {time.monotonic() - started:.1f} s", file=sys.stderr)
    except BuildFailed as exc:
        print(f"deploy images: {exc}", file=sys.stderr)
        return 1
    for name, ref in refs.items():
        print(f"{name}={ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
