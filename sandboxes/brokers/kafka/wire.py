"""Two requests in Kafka's own wire protocol, made without a client library: is the broker serving, and which release is it."""

from __future__ import annotations

import socket
import struct

PROBE_CLIENT = "broker-academy-tap"


def metadata_brokers(host: str, port: int, *, timeout: float) -> int:
    """Send a Metadata v1 request for no topics and return how many brokers answer."""
    client = b"ba-probe"
    body = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", head)
        reply = _recv_exact(sock, size)
    _correlation, brokers = struct.unpack_from(">ii", reply, 0)
    return brokers


#: The first metadata.version feature level of each Kafka release (MetadataVersion in
#: kafka-server-common): levels are never renumbered, so the table only grows. A release
#: newer than the table reports no version, which the version test catches.
_METADATA_RELEASES = (
    (7, "3.3"),
    (8, "3.4"),
    (9, "3.5"),
    (12, "3.6"),
    (15, "3.7"),
    (20, "3.8"),
    (21, "3.9"),
    (22, "4.0"),
    (26, "4.1"),
    (28, "4.2"),
    (30, "4.3"),
    (31, "4.4"),
    (34, None),  # 4.5's first level, unreleased when 4.4 was pinned
)


def metadata_release(level: int) -> str | None:
    """The Kafka release whose metadata.version levels include ``level``, or None when the table does not know it."""
    found = None
    for first, release in _METADATA_RELEASES:
        if level < first:
            break
        found = release
    return found


def supported_features(host: str, port: int, *, timeout: float) -> dict[str, tuple[int, int]]:
    """Send an ApiVersions v3 request and return the features the broker supports: {name: (min, max)}.

    v3 is the first flexible version (compact strings, tagged fields); the features
    travel in the response's tagged field 0. The response header is v0 whatever the version.
    """
    name, version = b"broker-academy", b"1"
    header = struct.pack(">hhih", 18, 3, 1, len(PROBE_CLIENT)) + PROBE_CLIENT.encode() + b"\0"
    body = bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\0"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reply = memoryview(_recv_exact(sock, size))
    pos = 4  # correlation id
    (error,) = struct.unpack_from(">h", reply, pos)
    if error:
        raise ValueError(f"ApiVersions answered error {error}")
    pos += 2
    count, pos = _uvarint(reply, pos)
    for _ in range(count - 1):  # api key, min, max, then an empty tag buffer each
        pos += 6
        pos = _skip_tags(reply, pos)
    pos += 4  # throttle time
    features: dict[str, tuple[int, int]] = {}
    tags, pos = _uvarint(reply, pos)
    for _ in range(tags):
        tag, pos = _uvarint(reply, pos)
        size, pos = _uvarint(reply, pos)
        end = pos + size
        if tag == 0:
            count, pos = _uvarint(reply, pos)
            for _ in range(count - 1):
                length, pos = _uvarint(reply, pos)
                key = bytes(reply[pos : pos + length - 1]).decode()
                low, high = struct.unpack_from(">hh", reply, pos + length - 1)
                pos = _skip_tags(reply, pos + length - 1 + 4)
                features[key] = (low, high)
        pos = end
    return features


def _uvarint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tags(data: memoryview, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _tag, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data
