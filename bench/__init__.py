"""`make bench`: the platform's benchmarks, run on this machine, written to var/bench/latest.json.

One module per area (pages, cells, stream, sandboxes); ``harness`` starts a
private platform (Redis, a Celery worker, uvicorn, a SQLite file, sandbox units
of its own instance) the way the test suite does, and removes all of it at the
end, even after Ctrl+C or a crash. ``report`` holds the metrics, their targets
and the output format of docs in BENCH.md.
"""
