"""Metrics of one run: percentiles, targets, var/bench/latest.json (BENCH.md's format) and the table."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "var" / "bench" / "latest.json"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float) -> float:
    """Four significant digits, enough for noisy shared machines."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, digits)


class Results:
    """name -> {"p50", "p95", "n"} (optionally "p99") or {"value"}."""

    def __init__(self) -> None:
        self.metrics: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def samples(self, name: str, values: list[float], *, p99: bool = False) -> None:
        if not values:
            self.notes.append(f"{name}: no samples")
            return
        entry: dict[str, Any] = {"p50": _round(percentile(values, 50)), "p95": _round(percentile(values, 95))}
        if p99:
            entry["p99"] = _round(percentile(values, 99))
        entry["n"] = len(values)
        self.metrics[name] = entry

    def value(self, name: str, value: float) -> None:
        self.metrics[name] = {"value": _round(float(value)) if not isinstance(value, int) else value}

    def note(self, text: str) -> None:
        self.notes.append(text)

    def get(self, name: str, key: str) -> float | None:
        return self.metrics.get(name, {}).get(key)


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory / 1024**3),
        "python": platform.python_version(),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write(results: Results, path: Path = OUTPUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"machine": machine(), "metrics": dict(sorted(results.metrics.items()))}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


# -- targets (issue #4) ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[Results, dict[str, Any]], bool | None]


def _below(key: str, limit: float) -> Callable[[Results, dict[str, Any]], bool | None]:
    return lambda _r, m: None if key not in m else m[key] < limit


def _at_most(key: str, limit: float) -> Callable[[Results, dict[str, Any]], bool | None]:
    return lambda _r, m: None if key not in m else m[key] <= limit


COLD_LIMITS = {"nats": 1.0, "activemq": 5.0, "rabbitmq": 10.0, "kafka": 15.0}


def _within(name: str, reference: str, factor: float, key: str = "p50") -> Callable[[Results, dict[str, Any]], bool | None]:
    def check(results: Results, m: dict[str, Any]) -> bool | None:
        ref = results.get(reference, key)
        if key not in m or ref is None:
            return None
        return m[key] <= factor * ref

    return check


def _all(*checks: Callable[[Results, dict[str, Any]], bool | None]) -> Callable[[Results, dict[str, Any]], bool | None]:
    def check(results: Results, m: dict[str, Any]) -> bool | None:
        outcomes = [c(results, m) for c in checks]
        if any(o is False for o in outcomes):
            return False
        return None if any(o is None for o in outcomes) else True

    return check


def targets(results: Results) -> dict[str, Target]:
    found: dict[str, Target] = {}
    for broker, limit in COLD_LIMITS.items():
        found[f"sandbox.process.{broker}.cold_start_s"] = Target(f"p50 < {limit:g} s", _below("p50", limit))
        found[f"sandbox.process.{broker}.warm_start_s"] = Target("p95 < 0.5 s", _below("p95", 0.5))
    started = results.get("sandbox.density_started_count", "value")
    found["sandbox.density_ready_count"] = Target(  # issue #14: a whole class's worth alive and answering
        f">= 100 and = started ({started})" if started is not None else ">= 100 and = started",
        lambda _r, m: None if started is None or "value" not in m else m["value"] >= 100 and m["value"] == started,
    )
    found["sandbox.density_left_behind_count"] = Target("0", lambda _r, m: None if "value" not in m else m["value"] == 0)
    found["sandbox.burst30_all_ready_s"] = Target("<= 10 s", lambda _r, m: None if "value" not in m else m["value"] <= 10)
    found["sandbox.burst30_nats_all_ready_s"] = Target("<= 10 s", lambda _r, m: None if "value" not in m else m["value"] <= 10)
    found["sandbox.burst30_booked_all_ready_s"] = Target("<= 10 s", lambda _r, m: None if "value" not in m else m["value"] <= 10)
    found["cell.roundtrip_s"] = Target(  # issue #14: no slower than a local Jupyter kernel
        "p50 < 0.3 s and <= 1.0x jupyter", _all(_below("p50", 0.3), _within("cell.roundtrip_s", "cell.roundtrip_jupyter_s", 1.0))
    )
    # Issue #14's two stream targets, and issue #4's p50 at 100 messages a second.
    found["stream.latency_ms.1000"] = Target(
        "p99 <= 2x direct p99", _within("stream.latency_ms.1000", "stream.direct_latency_ms.1000", 2.0, key="p99")
    )
    found["stream.latency_ms.10000"] = Target(
        "p50 <= 1.5x direct", _within("stream.latency_ms.10000", "stream.direct_latency_ms.10000", 1.5)
    )
    found["stream.latency_ms.100"] = Target(
        "p50 <= 2x direct", _within("stream.latency_ms.100", "stream.direct_latency_ms.100", 2.0)
    )
    for rate in (100, 1000, 10000):
        found[f"stream.accounted_ratio.{rate}"] = Target("= 1.0", lambda _r, m: None if "value" not in m else m["value"] == 1.0)
    # Issue #14: a class of learners at once (bench/load.py).
    found["load.cell_roundtrip_ms"] = Target(
        "p99 <= 500 ms, p50 <= 2x single",
        _all(_at_most("p99", 500), _within("load.cell_roundtrip_ms", "load.cell_roundtrip_single_ms", 2.0)),
    )
    found["load.cell_overhead_ms"] = Target(
        "p99 <= 500 ms, p50 <= 2x single",
        _all(_at_most("p99", 500), _within("load.cell_overhead_ms", "load.cell_overhead_single_ms", 2.0)),
    )
    found["load.stream_latency_ms"] = Target(
        "p99 <= 3x direct", _within("load.stream_latency_ms", "load.stream_direct_latency_ms", 3.0, key="p99")
    )
    found["load.stream_accounted_ratio"] = Target("= 1.0", lambda _r, m: None if "value" not in m else m["value"] == 1.0)
    ready = results.get("load.learners_count", "value")
    found["load.learners_ready_count"] = Target(
        f"= learners ({ready})" if ready is not None else "= learners",
        lambda _r, m: None if ready is None or "value" not in m else m["value"] == ready,
    )
    found["load.left_behind_count"] = Target("= 0", lambda _r, m: None if "value" not in m else m["value"] == 0)
    found["load.cell_failed_count"] = Target("= 0", lambda _r, m: None if "value" not in m else m["value"] == 0)
    found["stream.stalled_client_rss_growth_mb"] = Target("bounded (< 100 MB)", _below("value", 100))
    found["stream.stalled_client_agent_rss_growth_mb"] = Target("bounded (< 100 MB)", _below("value", 100))
    return found


def _show(m: dict[str, Any]) -> str:
    if "value" in m:
        return f"{m['value']:g}"
    text = f"p50 {m['p50']:g}  p95 {m['p95']:g}"
    if "p99" in m:
        text += f"  p99 {m['p99']:g}"
    return text + f"  (n={m['n']})"


def table(results: Results) -> str:
    goals = targets(results)
    rows = [("metric", "value", "target", "ok?")]
    for name, m in sorted(results.metrics.items()):
        goal = goals.get(name)
        outcome = goal.check(results, m) if goal else None
        rows.append((name, _show(m), goal.text if goal else "", {True: "yes", False: "NO", None: ""}[outcome]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if results.notes:
        lines.append("")
        lines += [f"note: {n}" for n in results.notes]
    return "\n".join(lines)


def print_table(results: Results) -> None:
    print(table(results), file=sys.stdout, flush=True)
