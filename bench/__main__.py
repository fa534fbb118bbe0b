"""python -m bench [--only AREA[,AREA...]] [--quick] [--learners N]

Runs the benchmarks on this machine against a private platform, writes
var/bench/latest.json (BENCH.md's format) and prints a table. Exits 0 whatever
the numbers are; non-zero only when a benchmark itself crashed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback

AREAS = ("pages", "cells", "stream", "sandboxes", "burst", "density", "docker", "load", "k8s-starts", "k8s-agent", "k8s-sim")
#: Areas whose module is not named after them.
MODULES = {
    "docker": "sandboxes",
    "k8s-starts": "k8s_starts",
    "k8s-agent": "k8s_starts",
    "k8s-sim": "k8s_sim",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--only", default="", help=f"comma-separated areas: {', '.join(AREAS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter phases (under 5 minutes)")
    parser.add_argument("--learners", type=int, help="learners of the load area (default 50, 3 with --quick)")
    args = parser.parse_args(argv)
    if args.learners is not None:
        os.environ["BENCH_LOAD_LEARNERS"] = str(args.learners)
    areas = [a.strip() for a in args.only.split(",") if a.strip()] or list(AREAS)
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(AREAS)}")

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    # Imported here: importing the harness points the environment at a private run and sets Django up.
    from . import harness, report

    results = report.Results()
    platform = harness.Platform()
    crashed = False
    started = time.monotonic()
    try:
        harness.say(f"starting a private platform in {harness.RUN_DIR}")
        platform.start()
        for area in AREAS:
            if area not in areas:
                continue
            harness.say(f"== {area}")
            area_started = time.monotonic()
            try:
                module = __import__(f"bench.{MODULES.get(area, area)}", fromlist=["run"])
                runner = {
                    "docker": getattr(module, "run_docker", None),
                    "k8s-agent": getattr(module, "run_agent", None),
                }.get(area) or module.run
                runner(platform, results, quick=args.quick)
            except KeyboardInterrupt:
                raise
            except Exception:
                crashed = True
                results.note(f"{area}: the benchmark crashed (traceback on stderr)")
                traceback.print_exc()
                # Whatever the area left running must not skew the next one.
                harness.units_stop_all()
            harness.say(f"== {area} took {time.monotonic() - area_started:.0f} s")
    except KeyboardInterrupt:
        crashed = True
        results.note("interrupted")
        harness.say("interrupted: cleaning up")
    except Exception:
        crashed = True
        results.note("the platform could not start or the run crashed (traceback on stderr)")
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        platform.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    path = report.write(results)
    report.print_table(results)
    harness.say(f"wrote {path} in {time.monotonic() - started:.0f} s")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
