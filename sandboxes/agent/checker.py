"""Exercise checks in a container of their own beside a Kubernetes unit's agent: the pod's ``checker``.

A check passes by exiting 0, so whatever can reach it can forge a pass. In a pod the agent holds no
capability to give a check a uid of its own, and the learner's cells, their terminal and whatever they
leave running share the agent's container: its uid, its PID namespace, its /tmp. So the unit's checks
run in a second container of the pod (kubernetes_manifests.py), which is:

- another uid (CHECKER_UID), in a PID namespace of its own (a pod's containers share none unless asked):
  no process of the learner's can see a check, signal it, trace it or open its ``/proc`` files;
- its own /tmp and read-only root: a check reads nothing the learner wrote;
- reached by the platform on CHECKER_PORT with a token of its own, mounted in this container only: the
  learner can read their agent's token (their container's file), which does not open this door.

It sees the broker on the pod's loopback as a cell does, serves ``check`` and nothing else, and after
each check kills whatever the check left running (every process of its uid but its own session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from sandboxes.brokers import get_broker

from . import cell_ops, protocol
from .cells import CellRunner
from .confinement import CellLimits
from .leftovers import kill_leftovers

log = logging.getLogger("sandboxes.agent.checker")


class Checker:
    """The checks' server of one unit (``python -m sandboxes.agent --checks-only``)."""

    def __init__(self, *, broker: str, listen: tuple[str, int], token: str) -> None:
        if not token:
            raise ValueError("the checker listens on the network: it needs a token")
        kind = get_broker(broker)
        self.listen = listen
        self.token = token.encode()
        self.done = asyncio.Event()
        session = os.getsid(0)
        self.runner = CellRunner(
            env=kind.connection_env(host="localhost", ports=kind.ports(None)),
            limits=CellLimits(),
            uid=None,
            cgroup_procs=[],
            confinement="setpriv",
            # Checks have a uid of their own here (this container's), so they need no execute-only interpreter.
            checker_uid=os.getuid(),
            reap=lambda: kill_leftovers(uid=os.getuid(), spare_sessions={session}, collect=os.getpid() == 1),
        )

    async def main(self) -> None:
        host, port = self.listen
        server = await asyncio.start_server(self.handle, host, port, limit=protocol.MAX_LINE)
        async with server:
            await self.done.wait()
        await self.runner.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await protocol.first_request(reader, writer, self.token)
            if request is None:
                return
            if request.get("op") != "check":
                await protocol.send(
                    writer, {"type": "error", "message": f"the checker serves checks only, not {request.get('op')!r}"}
                )
                return
            await cell_ops.run_and_reply(request, reader, writer, runner=self.runner)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except ValueError as exc:
            with contextlib.suppress(Exception):
                await protocol.send(writer, {"type": "error", "message": f"bad request: {exc}"})
        except Exception as exc:  # a check that cannot be run is said, not a connection dropped without a word
            log.exception("check not run")
            with contextlib.suppress(Exception):
                await protocol.send(writer, {"type": "error", "message": f"the check could not be run: {exc}"})
        finally:
            with contextlib.suppress(Exception):
                writer.close()
