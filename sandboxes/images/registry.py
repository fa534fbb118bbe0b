"""Push the sandbox images to a cluster's registry, for the kubernetes backend.

    python -m sandboxes.images.registry --registry HOST:PORT [KIND ...]

Each broker kind's image is the one ``make images`` builds (``broker-academy/<kind>:latest``),
flattened: its root filesystem is exported into a folder, the agent's code of this checkout
replaces the image's (so the pods run the code under test even when another checkout
retagged ``latest``), and an ``/entrypoint`` sets the image's environment and starts the
agent. ``scripts/k8s-lab.sh push-image`` pushes the folder as a one-layer image, which
keeps no environment or entry point of its own. Python's bytecode is compiled as
unchecked hashes: push-image zeroes every file's time, which would make timestamped
bytecode stale and every import compile again in a pod whose root is read-only.

The tag is a hash of the Docker image's id and the agent's sources: pushing again with
nothing changed finds the tag in the registry and does nothing. Prints one line per kind,
the reference a pod names (``HOST:PORT/broker-academy/<kind>:<tag>``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import docker
import requests

from sandboxes.brokers import broker_names
from sandboxes.images import image_ref, image_repository

from .build import AGENT_SOURCES, ROOT, BuildFailed

LAB_SCRIPT = ROOT / "scripts" / "k8s-lab.sh"
PYTHON_TREES = ("/opt/venv", "/opt/broker-academy", "/usr/lib/python3")
NO_IMAGE = "the image {image} is missing: build the images with `make images`"


def _sources() -> list[Path]:
    files: list[Path] = []
    for name in AGENT_SOURCES:
        path = ROOT / name
        items = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [p for p in items if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def tag_for(image_id: str) -> str:
    digest = hashlib.sha256(image_id.encode())
    for path in _sources():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def manifest_exists(registry: str, repository: str, tag: str) -> bool:
    """Whether the registry holds ``repository:tag`` (a push of it can be skipped)."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    try:
        return requests.head(f"http://{registry}/v2/{repository}/manifests/{tag}", headers=accept, timeout=10).ok
    except requests.RequestException:
        return False


def export_into(client: docker.DockerClient, image: str, folder: Path) -> None:
    """The image's files, unpacked into ``folder`` (owners kept), through a container made and removed for it."""
    container = client.containers.create(image, entrypoint=["/bin/true"])
    try:
        untar = subprocess.Popen(["tar", "-x", "--numeric-owner", "-C", str(folder)], stdin=subprocess.PIPE)
        assert untar.stdin is not None
        for chunk in container.export():
            untar.stdin.write(chunk)
        untar.stdin.close()
        if untar.wait() != 0:
            raise BuildFailed(f"extracting {image} failed")
    finally:
        container.remove(force=True)


def rootfs(client: docker.DockerClient, image: str, folder: Path) -> None:
    """The image's files, this checkout's agent, bytecode that survives zeroed times, and /entrypoint."""
    attrs = client.images.get(image).attrs["Config"]
    export_into(client, image, folder)
    code = folder / "opt" / "broker-academy"
    shutil.rmtree(code / "sandboxes", ignore_errors=True)
    for path in _sources():
        target = code / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    trees = [t for t in PYTHON_TREES if (folder / t.lstrip("/")).exists()]
    # With the image's own Python, inside its root: the bytecode must be of that interpreter.
    subprocess.run(
        ["chroot", str(folder), "/usr/bin/python3", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
         "unchecked-hash", *trees],
        check=True,
    )  # fmt: skip
    exports = "".join(f"export {shlex.quote(item)}\n" for item in attrs.get("Env") or [])
    command = " ".join(shlex.quote(part) for part in attrs.get("Entrypoint") or [])
    entrypoint = folder / "entrypoint"
    entrypoint.write_text(
        f'#!/bin/sh\n# The image\'s environment and entry point (push-image keeps neither).\n{exports}exec {command} "$@"\n'
    )
    entrypoint.chmod(0o755)


def push(client: docker.DockerClient, kind: str, registry: str) -> str:
    image = image_ref(kind)
    try:
        image_id = client.images.get(image).id
    except docker.errors.ImageNotFound:
        raise RuntimeError(NO_IMAGE.format(image=image)) from None
    repository, tag = image_repository(kind), tag_for(image_id)
    if not manifest_exists(registry, repository, tag):
        with tempfile.TemporaryDirectory(prefix=f"k8s-image-{kind}-") as folder:
            rootfs(client, image, Path(folder))
            result = subprocess.run(
                [str(LAB_SCRIPT), "push-image", folder, f"{repository}:{tag}"], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"push-image {repository}:{tag} failed:\n{result.stdout}{result.stderr}")
    return f"{registry}/{repository}:{tag}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="sandboxes.images.registry")
    parser.add_argument("--registry", required=True, help="HOST:PORT of the registry the cluster pulls from")
    parser.add_argument("kinds", nargs="*", default=None)
    args = parser.parse_args()
    kinds = args.kinds or broker_names()
    try:
        print("\n".join(side_by_side(partial(push, registry=args.registry), kinds, timeout=300)), flush=True)
    except RuntimeError as exc:
        sys.exit(f"sandboxes.images.registry: {exc}")


def side_by_side(push_one: Callable[[docker.DockerClient, str], str], items: list[str], *, timeout: int) -> list[str]:
    """``push_one(client, item)`` for every item at once, in threads (a push mostly waits on an export, a
    compression or the registry), each with a Docker client of its own; the results in the order of ``items``."""

    def one(item: str) -> str:
        return push_one(docker.from_env(timeout=timeout), item)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(one, items))


if __name__ == "__main__":
    main()
