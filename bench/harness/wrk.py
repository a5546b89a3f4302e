"""Running wrk and reading its results.

wrk runs with `--latency` and bench/wrk/report.lua, whose done() prints one
`BENCH_JSON {...}` line with the request count, latency percentiles and the
error counters; that line is what we parse (the human-readable summary is
kept in the run log). POST scenarios set WRK_BODY_BYTES for the script.
"""

import json
import os
import subprocess

THREADS = 2
TIMEOUT = "10s"


def argv(script, url, connections, duration):
    """wrk's exact command line."""
    threads = min(THREADS, connections)
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={TIMEOUT}",
            "--latency", "-s", script, url]


def run(cmd, body_bytes, log_path):
    """Runs wrk, appends its output to `log_path`, returns the parsed result
    (requests, rps, p50_ms, p99_ms, errors...)."""
    env = dict(os.environ)
    if body_bytes:
        env["WRK_BODY_BYTES"] = str(body_bytes)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited {out.returncode}: {out.stderr.strip()[:200]}")
    return parse(out.stdout)


def parse(stdout):
    """The BENCH_JSON line of wrk's output, with derived fields."""
    line = next((l for l in stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError("wrk printed no BENCH_JSON line")
    raw = json.loads(line[len("BENCH_JSON ") :])
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "duration_s": raw["duration_us"] / 1e6,
        # Successful responses only: a 503 storm is not throughput.
        "rps": (raw["requests"] - raw["status"]) / (raw["duration_us"] / 1e6),
        "rps_all": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["status"],
        "socket_errors": socket_errors,
        "errors_detail": {k: raw[k] for k in ("connect", "read", "write", "timeout", "status")},
        "bytes": raw["bytes"],
    }
