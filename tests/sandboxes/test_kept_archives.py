"""Kept data as an archive (Kubernetes' kept state): what the agent unpacks stays inside the data folder, and
what the platform files is a whole archive. The archives here are made as an attacker would make them: a
learner controls the broker's files, and an archive that came back from a pod is read by the next one."""

from __future__ import annotations

import asyncio
import io
import socket
import tarfile
from pathlib import Path

import pytest

from sandboxes.agent import kept_data
from sandboxes.backends.kept_archives import BrokenArchive, KeptArchives, verified


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def restore(tmp_path: Path, payload: bytes, *, announced: int | None = None) -> Path:
    """Send ``payload`` to kept_data.receive_restore over a real socket, as the backend sends it, announced as
    ``announced`` bytes (its own length unless said); returns the data folder."""
    data = tmp_path / "unit" / "data"
    data.mkdir(parents=True)

    async def go() -> None:
        ours, theirs = socket.socketpair()
        reader, _ = await asyncio.open_connection(sock=theirs)
        ours.sendall(payload)
        ours.close()
        size = len(payload) if announced is None else announced
        await kept_data.receive_restore({"op": "restore", "bytes": size}, reader, data=data)

    asyncio.run(go())
    return data


def test_a_whole_archive_comes_back_as_it_left(tmp_path):
    data = restore(tmp_path, archive((member("jetstream/stream.dat"), b"order-0"), (member("meta.json"), b"{}")))
    assert (data / "jetstream" / "stream.dat").read_bytes() == b"order-0"
    assert not (data.parent / kept_data.INCOMING).exists()  # the archive itself is not left on the unit's disk


@pytest.mark.parametrize(
    "evil",
    [
        member("../outside.txt"),
        member("escape", tarfile.SYMTYPE, link="/etc/passwd"),
        member("up", tarfile.SYMTYPE, link="../../outside"),
        member("hard", tarfile.LNKTYPE, link="../outside.txt"),
        member("null", tarfile.CHRTYPE),
    ],
    ids=["parent-path", "absolute-symlink", "symlink-out", "hardlink-out", "device"],
)
def test_an_archive_that_reaches_out_of_the_data_folder_is_refused_and_leaves_nothing(tmp_path, evil):
    (tmp_path / "outside.txt").write_text("the host's")
    payload = archive((member("first.dat"), b"x"), (evil, b""))
    with pytest.raises(kept_data.RestoreError, match="could not be unpacked"):
        restore(tmp_path, payload)
    data = tmp_path / "unit" / "data"
    assert list(data.iterdir()) == []  # not even the good member before it: the broker starts on nothing
    assert (tmp_path / "outside.txt").read_text() == "the host's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt", "unit"]


def test_a_truncated_archive_is_refused_by_the_agent_and_never_filed_by_the_platform(tmp_path):
    whole = archive((member("log.dat"), bytes(range(256)) * 4096))
    half = whole[: len(whole) // 2]
    with pytest.raises(kept_data.RestoreError):
        restore(tmp_path, half)
    with pytest.raises(kept_data.RestoreError, match="ended after"):
        restore(tmp_path / "short", half, announced=len(whole))

    kept = KeptArchives(tmp_path / "root", "bat")
    good = kept.incoming("bat-u1-nats")
    good.write_bytes(whole)
    assert kept.commit(good, "bat-u1-nats") == len(whole) and kept.keys() == ["bat-u1-nats"]
    broken = kept.incoming("bat-u1-nats")
    broken.write_bytes(half)
    with pytest.raises(BrokenArchive):
        kept.commit(broken, "bat-u1-nats")
    assert kept.path("bat-u1-nats").read_bytes() == whole  # the good one stays; the half one is gone
    assert not broken.exists()
    verified(kept.path("bat-u1-nats"))


class StoppedBroker:
    """What serve_export needs of the agent's broker: its unit folder, and a stop (counted)."""

    def __init__(self, unit_dir: Path) -> None:
        self.unit_dir = unit_dir
        self.stops = 0

    async def stop(self) -> None:
        self.stops += 1


def test_what_export_sends_restores_to_the_same_files_and_the_agent_ends(tmp_path):
    source = tmp_path / "old" / "data"
    (source / "jetstream" / "KEPT").mkdir(parents=True)
    blob = bytes(range(256)) * 8192  # 2 MiB: more than a socket's buffer, so the send waits on its reader
    (source / "jetstream" / "KEPT" / "1.blk").write_bytes(blob)
    (source / "lost+found").mkdir()
    # RabbitMQ's plugins folder: links to the system's applications, which the agent makes again at each start.
    (source / "plugins").mkdir()
    (source / "plugins" / "rabbit_common-3.10.8").symlink_to(tmp_path / "old", target_is_directory=True)
    broker = StoppedBroker(source.parent)
    done = asyncio.Event()

    async def export() -> bytes:
        ours, theirs = socket.socketpair()
        _, writer = await asyncio.open_connection(sock=ours)
        reader, _ = await asyncio.open_connection(sock=theirs)
        reading = asyncio.create_task(reader.read())  # to the end, as agent_client.export_data reads
        await kept_data.serve_export(writer, broker=broker, done=done)  # type: ignore[arg-type]
        writer.close()  # as the agent's handler does once the op returns
        head, _, body = (await reading).partition(b"\n")
        assert head == b'{"type":"archive"}'
        return body

    payload = asyncio.run(export())
    assert broker.stops == 1 and done.is_set()  # the broker stopped before its files were read; the agent ends
    data = restore(tmp_path / "new", payload)
    assert (data / "jetstream" / "KEPT" / "1.blk").read_bytes() == blob
    assert not (data / "lost+found").exists()
    assert (data / "plugins").is_dir() and list((data / "plugins").iterdir()) == []  # the folder, not the links
