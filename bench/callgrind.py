#!/usr/bin/env python3
"""Instructions per request under callgrind: rwsgi against bjoern.

Wall-clock figures swing with the machine; instruction counts do not. Each
server runs the hello app as one worker process under callgrind, and wrk
(one thread, 32 keep-alive connections by default) loads it twice: a short
run and a long one, each in a fresh server. The worker's instructions in
the short run are start-up plus N requests, in the long one start-up plus
M requests, so their difference divided by M - N is the cost of one
request with start-up cancelled out (zeroing the counters mid-run does not
exclude start-up in a forked worker). The top functions are counted the
same way (exclusive instructions, per request).

    bench/callgrind.py                                   # rwsgi and bjoern, hello
    bench/callgrind.py --servers rwsgi --app flask_hello:application --top 30

Needs valgrind, wrk and bench/.venv (bench/run.sh makes it; bjoern is
taken from there). rwsgi's workers rewrite their argv area (the process
title), which under valgrind holds valgrind's own options: they are
passed through VALGRIND_OPTS instead. Under callgrind an app is some 50
times slower: one whose requests then take over 1 ms runs on rwsgi's pool
thread, not inline as it would outside callgrind (see docs/performance.md),
so compare frameworks with that in mind.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from harness import procs  # noqa: E402

APPS = os.path.join(REPO, "bench", "apps")
VENV = os.path.join(REPO, "bench", ".venv")
# Start-up and shutdown under valgrind take tens of seconds.
START_TIMEOUT = 120.0
STOP_GRACE = 60.0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", default="rwsgi,bjoern", help="rwsgi, bjoern or both [rwsgi,bjoern]")
    p.add_argument("--app", default="hello:application", help="MODULE:CALLABLE in bench/apps")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--short", type=int, default=4, help="seconds of the short run [4]")
    p.add_argument("--long", type=int, default=12, help="seconds of the long run [12]")
    p.add_argument("--top", type=int, default=15, help="functions listed per server [15]")
    p.add_argument("--rwsgi", default=os.path.join(REPO, "target", "release", "rwsgi"))
    return p.parse_args(argv)


def argv_of(server, app, port, rwsgi):
    if server == "rwsgi":
        return [rwsgi, "--http-socket", f"127.0.0.1:{port}", "--module", app, "--chdir", APPS,
                "--home", VENV, "--processes", "1", "--threads", "1", "--disable-logging"]
    if server == "bjoern":
        return [os.path.join(VENV, "bin", "python"), os.path.join(REPO, "bench", "launch.py"),
                "bjoern", app, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--chdir", APPS]
    raise SystemExit(f"unknown server {server!r} (rwsgi or bjoern)")


def one_run(server, args, seconds, out_dir):
    """Requests served and the worker's callgrind file for one run."""
    port = procs.free_port()
    tag = f"{server}.{seconds}"
    env = dict(os.environ, VALGRIND_OPTS=f"--callgrind-out-file={out_dir}/{tag}.%p")
    argv = ["valgrind", "--tool=callgrind", "--trace-children=yes"]
    argv += argv_of(server, args.app, port, args.rwsgi)
    proc = procs.start(argv, os.path.join(out_dir, f"{tag}.log"), env=env, cwd=APPS)
    try:
        procs.wait_listening(proc, ("127.0.0.1", port), timeout=START_TIMEOUT)
        time.sleep(2)  # the worker, forked after the port opened, settles
        wrk = subprocess.run(
            ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
             f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=seconds + 60)
    finally:
        procs.stop(proc, grace=STOP_GRACE)
    found = re.search(r"(\d+) requests in", wrk.stdout)
    if not found:
        raise SystemExit(f"{server}: wrk printed no request count:\n{wrk.stdout}{wrk.stderr}")
    # The worker is the process with the most instructions (the master or
    # launcher only forks and waits).
    files = glob.glob(os.path.join(out_dir, f"{tag}.[0-9]*"))
    if not files:
        raise SystemExit(f"{server}: callgrind wrote no profile (see {out_dir}/{tag}.log)")
    return int(found.group(1)), max(files, key=total)


def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return 0


def functions(path):
    """Exclusive instructions per function, as callgrind_annotate lists them."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--tree=none",
                          "--threshold=100", path], capture_output=True, text=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in m.group(2):
            name = re.sub(r"\s*\[.*\]$", "", m.group(2))
            name = name.split(":", 1)[1] if ":" in name else name
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def measure(server, args, out_dir):
    short_reqs, short_file = one_run(server, args, args.short, out_dir)
    long_reqs, long_file = one_run(server, args, args.long, out_dir)
    served = long_reqs - short_reqs
    if served <= 0:
        raise SystemExit(f"{server}: the long run served no more than the short one")
    per_request = (total(long_file) - total(short_file)) / served
    a, b = functions(short_file), functions(long_file)
    top = sorted(((b.get(k, 0) - a.get(k, 0)) / served, k) for k in set(a) | set(b))
    return per_request, served, top[::-1][:args.top]


def main(argv):
    args = parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    results = {}
    with tempfile.TemporaryDirectory(prefix="rwsgi-callgrind-") as out_dir:
        for server in servers:
            print(f"{server}: {args.short} s and {args.long} s runs under callgrind ...",
                  file=sys.stderr, flush=True)
            results[server] = measure(server, args, out_dir)
    print(f"# instructions per request: {args.app}, one worker, "
          f"wrk -t1 -c{args.connections}, {args.long} s run minus {args.short} s run\n")
    for server, (per_request, served, top) in results.items():
        print(f"{server}: {per_request:,.0f} instructions per request "
              f"({served:,} requests in the difference)")
        for cost, name in top:
            print(f"  {cost:8,.0f}  {name[:110]}")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
