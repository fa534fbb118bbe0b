"""Build the sandbox images from the Dockerfiles beside this module, through the Docker SDK.

    python -m sandboxes.images.build [KIND ...] [--force]

First ``broker-academy/base`` (Debian's Python with the broker clients), then one
image per broker kind on top of it. Each image is tagged with the hash of
everything that goes into it and with ``latest``; an image whose hash is already
present is not built again, so a run with nothing changed takes about a second.
Needs a local engine (scripts/docker-engine.sh), the base image
debian:bookworm-slim (scripts/docker-base.sh), and the brokers that the install step
fetches or builds at the versions of sandboxes/brokers/versions.py (Kafka's and
ActiveMQ's jars, nats-server and natscli): the images copy those same files, so the
docker backend runs what the process backend runs. ``make images`` runs all of them.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from sandboxes.brokers import broker_entry, broker_names
from sandboxes.images import REPOSITORY, RUN_TAG, SOURCE_LABEL, image_repository

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEBIAN = "debian:bookworm-slim"
BASE_REPOSITORY = f"{REPOSITORY}/base"
#: What of the project goes into every image: the agent and the broker kinds, nothing of Django.
AGENT_SOURCES = ("sandboxes/__init__.py", "sandboxes/events.py", "sandboxes/agent", "sandboxes/brokers")

NO_ENGINE = "no Docker Engine answers ({error}); start one with scripts/docker-engine.sh"
NO_DEBIAN = f"the image {DEBIAN} is missing; create it with scripts/docker-base.sh"


class BuildFailed(RuntimeError):
    """An image could not be built; the message ends with the build's last lines."""


class Context:
    """The files of one build context, by path; hashed and packed the same way on every run."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.executable: set[str] = set()

    def add(self, name: str, data: bytes, *, executable: bool = False) -> None:
        self.files[name] = data
        if executable:
            self.executable.add(name)

    def add_path(self, name: str, path: Path, *, executable: bool = False) -> None:
        """A file, or a folder's files (without caches), under ``name``."""
        if path.is_file():
            self.add(name, path.read_bytes(), executable=executable)
            return
        for item in sorted(path.rglob("*")):
            if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
                self.add(f"{name}/{item.relative_to(path).as_posix()}", item.read_bytes())

    def digest(self, *extra: str) -> str:
        total = hashlib.sha256()
        for part in extra:
            total.update(part.encode() + b"\0")
        for name in sorted(self.files):
            mode = b"x" if name in self.executable else b"-"
            total.update(name.encode() + b"\0" + mode + hashlib.sha256(self.files[name]).digest())
        return total.hexdigest()

    def tar(self) -> io.BytesIO:
        """An uncompressed tar with fixed owners, modes and times, so that the build cache holds."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in sorted(self.files):
                info = tarfile.TarInfo(name)
                info.size = len(self.files[name])
                info.mode = 0o755 if name in self.executable else 0o644
                tar.addfile(info, io.BytesIO(self.files[name]))
        buffer.seek(0)
        return buffer


def kind_module(kind: str) -> ModuleSpec:
    """Where the registry says the kind lives (its module, not imported)."""
    module = broker_entry(kind).kind.rpartition(".")[0]
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise BuildFailed(f"the broker kind {kind!r} names the module {module}, which does not exist")
    return spec


def kind_dockerfile(kind: str) -> Path:
    """The kind's Dockerfile: ``Dockerfile`` in its package when it is one, else ``images/<kind>.Dockerfile``."""
    for folder in kind_module(kind).submodule_search_locations or ():
        if (Path(folder) / "Dockerfile").is_file():
            return Path(folder) / "Dockerfile"
    return HERE / f"{kind}.Dockerfile"


def kind_extras(kind: str, context: Context) -> None:
    """Add what the kind's image needs besides the agent: its module's ``image_files()``, {name in the image: path
    on the host} (a folder brings its files), when it has one; a file missing there fails the build with its reason."""
    image_files = getattr(importlib.import_module(kind_module(kind).name), "image_files", None)
    try:
        files = image_files() if image_files else {}
    except FileNotFoundError as missing:
        raise BuildFailed(str(missing)) from None
    for name, path in files.items():
        context.add_path(name, Path(path), executable=os.access(path, os.X_OK) and Path(path).is_file())


def build(client: docker.DockerClient, *, repository: str, context: Context, digest: str, buildargs: dict[str, str]) -> str:
    """Build and tag ``repository:<digest>`` and ``repository:latest``; returns the image reference."""
    ref = f"{repository}:{digest[:20]}"
    lines: list[str] = []
    stream = client.api.build(
        fileobj=context.tar(),
        custom_context=True,
        tag=ref,
        buildargs=buildargs,
        labels={SOURCE_LABEL: digest},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        text = chunk.get("stream") or ""
        if text:
            lines.extend(text.splitlines())
            sys.stdout.write(text)
            sys.stdout.flush()
        if "error" in chunk:
            tail = "\n".join(lines[-30:])
            raise BuildFailed(f"{ref}: {chunk['error']}\n{tail}")
    client.api.tag(ref, repository, RUN_TAG)
    return ref


def ensure(
    client: docker.DockerClient,
    *,
    repository: str,
    context: Context,
    digest: str,
    buildargs: dict[str, str],
    force: bool,
    complete: Callable[[Context], None] | None = None,
) -> str:
    """The image for ``digest``: found, or built now; ``latest`` points at it either way.

    ``complete`` adds what the hash does not cover because it follows from what it does
    (the wheels of pinned requirements), only when a build is needed.
    """
    ref = f"{repository}:{digest[:20]}"
    started = time.monotonic()
    if not force and _exists(client, ref):
        client.api.tag(ref, repository, RUN_TAG)
        print(f"{ref}: up to date")
        return ref
    if complete is not None:
        complete(context)
    build(client, repository=repository, context=context, digest=digest, buildargs=buildargs)
    prune(client, repository=repository, keep=ref)
    print(f"{ref}: built in {time.monotonic() - started:.0f} s")
    return ref


def _exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def prune(client: docker.DockerClient, *, repository: str, keep: str) -> None:
    """Untag this repository's older builds; one still used by a container stays."""
    for image in client.images.list(name=repository):
        for tag in image.tags:
            if tag not in (keep, f"{repository}:{RUN_TAG}"):
                try:
                    client.images.remove(tag)
                except APIError:
                    pass


def add_wheels(context: Context) -> None:
    """The wheels of requirements.txt, made by the host's pip: the image then installs them offline."""
    with tempfile.TemporaryDirectory(prefix="ba-wheels-") as folder:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--wheel-dir",
                folder,
                "--requirement",
                str(HERE / "requirements.txt"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildFailed(f"pip wheel failed:\n{result.stderr[-2000:]}")
        context.add_path("wheels", Path(folder))


def base_image(client: docker.DockerClient, *, force: bool) -> str:
    try:
        debian = client.images.get(DEBIAN)
    except ImageNotFound:
        raise BuildFailed(NO_DEBIAN) from None
    context = Context()
    context.add("Dockerfile", (HERE / "base.Dockerfile").read_bytes())
    context.add("requirements.txt", (HERE / "requirements.txt").read_bytes())
    digest = context.digest(debian.id)
    return ensure(
        client, repository=BASE_REPOSITORY, context=context, digest=digest, buildargs={}, force=force, complete=add_wheels
    )


def kind_image(client: docker.DockerClient, *, kind: str, base: str, force: bool) -> str:
    dockerfile = kind_dockerfile(kind)
    if not dockerfile.exists():
        raise BuildFailed(f"no Dockerfile for the broker kind {kind!r}: add {dockerfile.relative_to(ROOT)}")
    context = Context()
    context.add("Dockerfile", dockerfile.read_bytes())
    for source in AGENT_SOURCES:
        context.add_path(source, ROOT / source)
    kind_extras(kind, context)
    digest = context.digest(base)
    return ensure(
        client, repository=image_repository(kind), context=context, digest=digest, buildargs={"BASE": base}, force=force
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandboxes.images.build", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "kinds", nargs="*", metavar="KIND", help=f"broker kinds to build (default: all of {', '.join(broker_names())})"
    )
    parser.add_argument("--force", action="store_true", help="build again even when an image of the same sources exists")
    args = parser.parse_args(argv)
    kinds = args.kinds or broker_names()
    unknown = sorted(set(kinds) - set(broker_names()))
    if unknown:
        parser.error(f"unknown broker kinds: {', '.join(unknown)}")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        print(NO_ENGINE.format(error=exc), file=sys.stderr)
        return 1
    started = time.monotonic()
    # One build at a time on the machine: a second caller waits, then finds the images of the same sources built.
    lock = open("/run/lock/broker-academy-images.lock", "a")  # held until the process ends
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        base = base_image(client, force=args.force)
        for kind in kinds:
            kind_image(client, kind=kind, base=base, force=args.force)
    except BuildFailed as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    print(f"images ready in {time.monotonic() - started:.1f} s: {', '.join(image_repository(k) + ':' + RUN_TAG for k in kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
