"""Run one broker by hand, the way the agent does, or check which brokers are installed.

    python -m sandboxes.brokers check
    python -m sandboxes.brokers run KIND --data-dir DIR [--port NAME=N ...] [--snapshot-every S]

``run`` prints one JSON object per line on stdout: the stages with their
durations, the connection variables and the version the broker reports, then every event the tap sees (and
snapshots when asked) until Ctrl+C or SIGTERM, when it stops the broker and
everything it started.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sandboxes.brokers import BROKERS, broker_names, get_broker, versions
from sandboxes.brokers.base import BrokerLimits, BrokerUnavailable, Site, stop_process_group
from sandboxes.events import Event

_print_lock = threading.Lock()


def _out(obj: dict[str, Any]) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def check() -> int:
    """Print each broker's state and pinned version; exit status 1 when any is not installed."""
    bad = 0
    for name in broker_names():
        problems = get_broker(name).missing()
        bad += bool(problems)
        print(f"{name:10} {'ok' if not problems else 'MISSING':8} {versions.PINNED.get(name, '')}")
        for problem in problems:
            print(f"{'':10} - {problem}")
    return 1 if bad else 0


def run(args: argparse.Namespace) -> int:
    kind = get_broker(args.kind)
    problems = kind.missing()
    if problems:
        for problem in problems:
            print(f"{args.kind}: {problem}", file=sys.stderr)
        return 2
    ports = kind.ports(dict(_port(p) for p in args.port))
    limits = BrokerLimits()
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    site = Site(data_dir=data_dir, ports=ports, limits=limits, host=args.host, bind=args.bind)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    t0 = time.monotonic()
    _out({"stage": "preparing"})
    kind.prepare(site=site)
    spec = kind.launch(site=site)
    t1 = time.monotonic()
    _out(
        {
            "stage": "starting broker",
            "prepare_s": round(t1 - t0, 3),
            "argv": list(spec.argv),
        }
    )
    log_path = data_dir / "broker.log"
    with open(log_path, "ab") as log:
        proc = spec.start(stdout=log)
    try:
        _out({"stage": "waiting for broker", "pid": proc.pid, "log": str(log_path)})
        while not kind.probe_ready(host=args.host, ports=ports):
            if proc.poll() is not None or stopping.is_set() or time.monotonic() - t1 > args.timeout:
                why = "exited" if proc.returncode is not None else ("stopped" if stopping.is_set() else "timed out")
                _out(
                    {
                        "stage": "failed",
                        "why": why,
                        "log_tail": log_path.read_text(errors="replace")[-3000:],
                    }
                )
                return 1
            stopping.wait(0.1)
        _out(
            {
                "stage": "ready",
                "ready_s": round(time.monotonic() - t1, 3),
                "env": kind.connection_env(host=args.host, ports=ports),
                "version": kind.broker_version(host=args.host, ports=ports),
            }
        )

        def emit(event: Event | None) -> None:
            _out({"event": event.to_dict()} if event is not None else {"changed": True})

        tap = threading.Thread(
            target=kind.tap,
            kwargs={"host": args.host, "ports": ports, "emit": emit, "stop": stopping},
            name="tap",
            daemon=True,
        )
        tap.start()
        while not stopping.wait(args.snapshot_every or 1.0):
            if proc.poll() is not None:
                _out({"stage": "exited", "status": proc.returncode})
                return 1
            if args.snapshot_every:
                try:
                    _out({"snapshot": kind.snapshot(host=args.host, ports=ports)})
                except BrokerUnavailable as exc:
                    _out({"snapshot": None, "error": str(exc)})
        tap.join(timeout=5)
        return 0
    finally:
        status = stop_process_group(proc, timeout=spec.stop_timeout)
        _out({"stage": "stopped", "status": status})


def _port(text: str) -> tuple[str, int]:
    name, sep, number = text.partition("=")
    if not sep or not number.isdigit():
        raise argparse.ArgumentTypeError(f"--port wants NAME=NUMBER, got {text!r}")
    return name, int(number)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandboxes.brokers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="report which brokers are installed")
    p = sub.add_parser("run", help="run one broker in the foreground and print its events")
    p.add_argument("kind", choices=list(BROKERS))
    p.add_argument("--data-dir", required=True)
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=N",
        help="override a default port",
    )
    p.add_argument("--host", default="localhost", help="name clients use (default localhost)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for ready")
    p.add_argument(
        "--snapshot-every",
        type=float,
        default=0.0,
        metavar="S",
        help="print a snapshot every S seconds",
    )
    args = parser.parse_args(argv)
    return check() if args.command == "check" else run(args)


if __name__ == "__main__":
    sys.exit(main())
