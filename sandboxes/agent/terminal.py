"""The learner's terminal: one shell on a pty per unit, kept by the agent while the unit lives.

The shell is spawned through the cell runner (:meth:`CellRunner.spawn_terminal`), so it
has exactly a cell's confinement: the same uid, namespaces, rlimits, cgroup and
connection variables. The agent keeps the pty and the last :data:`SCROLLBACK_BYTES`
of its output; a page that attaches again (a reload) first gets that scrollback.

Requests on one connection (the first carries the op, the rest follow while it is open):
  {"op": "terminal", "rows", "cols"}  -> {"type": "output", "data": base64}* ... {"type": "closed", "reason"}
  {"op": "input", "data": str}          keystrokes and pastes, as text
  {"op": "resize", "rows", "cols"}
"closed" reasons: "exit" (the shell ended; the next attach starts a new one) and "stopped" (the unit stops).

The broker's command-line tools come preconfigured (:func:`write_tools`, once the broker is
ready): wrapper scripts in the unit's ``tools`` folder, first on PATH, that add the learner's
own broker address. Cells have the same folder first on their PATH, and the same /tmp (HOME):
a file a cell writes there the shell sees, and the other way round.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import shlex
import shutil
import struct
import termios
import urllib.parse
from pathlib import Path
from typing import Any

from . import protocol
from .cells import CellRunner

log = logging.getLogger("sandboxes.agent.terminal")

#: Output kept for a page that attaches again; older bytes are dropped first.
SCROLLBACK_BYTES = 256 * 1024
#: A single input message longer than this is cut (a paste of a whole file is not a terminal's job).
MAX_INPUT_CHARS = 64 * 1024
READ_CHUNK = 65536
#: Output messages waiting for a slow watcher before the pty is no longer read (the shell then waits,
#: as on a real terminal), and the level at which reading resumes.
BACKLOG_HIGH, BACKLOG_LOW = 64, 8
MIN_SIZE, MAX_ROWS, MAX_COLS = 2, 500, 1000

#: Kafka's tools as its own bin/kafka-*.sh scripts name them: script -> main class (Kafka 4).
KAFKA_TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-get-offsets.sh": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
}
#: A small heap and code cache: the tools run inside a cell's address-space limit.
JAVA_OPTS = "-Xmx96m -Xss512k -XX:ReservedCodeCacheSize=32m -XX:CompressedClassSpaceSize=48m -XX:+UseSerialGC"
JAVA_OPTS += " -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -Dlog4j2.configurationFile={tools}/log4j2.properties"

_KAFKA_WRAPPER = """#!/bin/sh
# Written by Broker Academy: Kafka's {script} against this sandbox's broker unless told otherwise.
# One malloc arena: each thread's own would reserve 64 MiB of the cell's address space.
export MALLOC_ARENA_MAX=1
for arg in "$@"; do
  case "$arg" in --bootstrap-server|--bootstrap-server=*) exec java {opts} -cp '{libs}/*' {main} "$@";; esac
done
exec java {opts} -cp '{libs}/*' {main} --bootstrap-server "$BOOTSTRAP_SERVERS" "$@"
"""
_QUIET_LOG4J2 = "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = STDERR\n"
_QUIET_LOG4J2 += "appender.stderr.type = Console\nappender.stderr.name = STDERR\nappender.stderr.target = SYSTEM_ERR\n"
_QUIET_LOG4J2 += "appender.stderr.layout.type = PatternLayout\nappender.stderr.layout.pattern = %p %m%n\n"

_BASHRC = """# Written by Broker Academy for the sandbox terminal.
PS1='sandbox:\\w\\$ '
export PATH={tools}:$PATH
"""


def write_tools(tools: Path, *, broker: str, connection: dict[str, str]) -> tuple[str, ...]:
    """Write the wrapper scripts and the shell's rc file into ``tools``; returns the host folders the shell must see."""
    tools.mkdir(mode=0o755, exist_ok=True)
    tools.chmod(0o755)
    seen: list[str] = [str(tools)]
    scripts: dict[str, str] = {}
    if broker == "kafka":
        from sandboxes.brokers.kafka import kafka_libs

        libs = kafka_libs()
        if libs.is_dir():
            seen.append(str(libs))
            opts = JAVA_OPTS.format(tools=tools)
            for script, main in KAFKA_TOOLS.items():
                scripts[script] = _KAFKA_WRAPPER.format(script=script, opts=opts, libs=libs, main=main)
            (tools / "log4j2.properties").write_text(_QUIET_LOG4J2)
    if broker == "rabbitmq" and shutil.which("rabbitmqadmin") and "RABBITMQ_API_URL" in connection:
        api = urllib.parse.urlsplit(connection["RABBITMQ_API_URL"])
        flags = " ".join(
            shlex.quote(flag)
            for flag in (
                f"--host={api.hostname}",
                f"--port={api.port}",
                f"--username={urllib.parse.unquote(api.username or '')}",
                f"--password={urllib.parse.unquote(api.password or '')}",
            )
        )
        scripts["rabbitmqadmin"] = f'#!/bin/sh\nexec {shutil.which("rabbitmqadmin")} {flags} "$@"\n'
    if broker == "nats":
        from sandboxes.brokers.nats import nats_cli

        cli = nats_cli().resolve()
        if cli.is_file():
            # The nats CLI reads NATS_URL itself; only its folder must be visible.
            seen.append(str(cli.parent))
            # Without cgo it finds its context folder through $USER; Go's heap is kept small for the cell's limits.
            scripts["nats"] = (
                '#!/bin/sh\nexport USER="${USER:-sandbox}" GOMAXPROCS="${GOMAXPROCS:-2}"\n'
                f'exec {shlex.quote(str(cli))} "$@"\n'
            )
    for name, text in scripts.items():
        path = tools / name
        path.write_text(text)
        path.chmod(0o755)
    (tools / "bashrc").write_text(_BASHRC.format(tools=tools))
    (tools / "bashrc").chmod(0o644)
    return tuple(seen)


def _set_size(fd: int, rows: Any, cols: Any) -> None:
    try:
        r = min(max(int(rows), MIN_SIZE), MAX_ROWS)
        c = min(max(int(cols), MIN_SIZE), MAX_COLS)
    except (TypeError, ValueError):
        return
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r, c, 0, 0))


class Session:
    """One shell on a pty, its scrollback and the connections watching it."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self.master = master
        self.scrollback = bytearray()
        self.watchers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.ended = asyncio.Event()
        self.paused = False

    def feed(self, data: bytes) -> None:
        self.scrollback += data
        if len(self.scrollback) > SCROLLBACK_BYTES:
            del self.scrollback[: len(self.scrollback) - SCROLLBACK_BYTES]
        message = {"type": "output", "data": base64.b64encode(data).decode()}
        for queue in self.watchers:
            queue.put_nowait(message)
        if any(queue.qsize() > BACKLOG_HIGH for queue in self.watchers):
            # A flood (``yes``) is held back at the pty, not buffered here without end.
            self.paused = True
            asyncio.get_running_loop().remove_reader(self.master)

    def drained(self, reader: Any) -> None:
        """Called after a watcher sent something: resume reading once every watcher caught up."""
        if self.paused and not self.ended.is_set() and all(q.qsize() <= BACKLOG_LOW for q in self.watchers):
            self.paused = False
            asyncio.get_running_loop().add_reader(self.master, reader, self)

    def finish(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        for queue in self.watchers:
            queue.put_nowait({"type": "closed", "reason": reason})
            queue.put_nowait(None)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)


class Terminals:
    """The unit's terminal: started on the first attach, kept until the shell exits or the unit stops.

    Its tools folder and its /tmp are the cell runner's (the same folders the unit's cells see).
    """

    def __init__(self, *, runner: CellRunner) -> None:
        if runner.tools is None:
            raise ValueError("the terminal needs the unit's tools folder (write_tools)")
        self.runner = runner
        self.tools = runner.tools
        self.session: Session | None = None
        self.closing = False
        self._lock = asyncio.Lock()

    async def _session(self, rows: Any, cols: Any) -> Session:
        async with self._lock:
            if self.session is not None and not self.session.ended.is_set():
                return self.session
            master, slave = os.openpty()
            _set_size(master, rows, cols)
            try:
                process = await self.runner.spawn_terminal(
                    ["/bin/bash", "--rcfile", str(self.tools / "bashrc"), "-i"], tty=slave, env={"TERM": "xterm-256color"}
                )
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            session = self.session = Session(process, master)
            asyncio.get_running_loop().add_reader(master, self._readable, session)
            asyncio.get_running_loop().create_task(self._reap(session))
            log.info("terminal started, pid %s", process.pid)
            return session

    @staticmethod
    def _readable(session: Session) -> None:
        try:
            data = os.read(session.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: every process holding the pty's other end is gone
        if data:
            session.feed(data)
        else:
            session.finish("exit")

    @staticmethod
    async def _reap(session: Session) -> None:
        await session.process.wait()
        # Output still in the pty is read first; the reader ends the session on EOF.
        await asyncio.sleep(0.2)
        session.finish("exit")

    async def serve(self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing:
            await protocol.send(writer, {"type": "closed", "reason": "stopped"})
            return
        session = await self._session(request.get("rows"), request.get("cols"))
        _set_size(session.master, request.get("rows"), request.get("cols"))
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        if session.scrollback:
            queue.put_nowait({"type": "output", "data": base64.b64encode(bytes(session.scrollback)).decode()})
        session.watchers.add(queue)

        async def from_platform() -> None:
            while True:
                message = await protocol.read_message(reader)
                if message is None or session.ended.is_set():
                    return
                if message.get("op") == "input" and isinstance(message.get("data"), str):
                    data = message["data"][:MAX_INPUT_CHARS].encode("utf-8", "replace")
                    with contextlib.suppress(OSError):
                        while data:
                            # Non-blocking: a shell that reads nothing fills the pty, then input is dropped.
                            written = os.write(session.master, data)
                            data = data[written:]
                elif message.get("op") == "resize":
                    _set_size(session.master, message.get("rows"), message.get("cols"))

        inbound = asyncio.create_task(from_platform())
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                await asyncio.wait({getter, inbound}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return  # the platform hung up; the shell stays for the next attach
                message = getter.result()
                if message is None:
                    return
                await protocol.send(writer, message)
                session.drained(self._readable)
        finally:
            inbound.cancel()
            session.watchers.discard(queue)
            session.drained(self._readable)

    async def close(self) -> None:
        """The unit stops: every watcher is told so, and the shell and its children end."""
        self.closing = True
        if self.session is not None:
            self.session.finish("stopped")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.process.wait(), 5)
