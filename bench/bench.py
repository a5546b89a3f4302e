#!/usr/bin/env python3
"""rwsgi side-by-side benchmark: rwsgi against uWSGI, Gunicorn, Granian,
bjoern and Pyruvate on the same apps, processes x threads and wrk settings.

For each scenario (bench/harness/scenarios.py), each repetition, each server
that supports it, in turn (A B A B): start the server (and nginx for the
proxy scenarios), check one response, warm up, run wrk and measure the
server's process tree. Writes bench/results/<date>/results.{md,json},
chart.svg and the run logs, and copies the table and chart to
bench/latest.md / bench/latest.svg.

Run it through bench/run.sh, which builds rwsgi and installs the peers;
`bench.py --help` lists the options. It is a benchmark, not a test: nothing
here asserts a timing.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import chart, report, runner, scenarios, servers  # noqa: E402
from harness import nginx as harness_nginx  # noqa: E402

REPO = os.path.dirname(HERE)

# How each peer is run, for the reader of the results (details: harness/servers.py).
PEER_NOTES = {
    "uwsgi": "uWSGI: direct HTTP through --http-socket, one request per connection, with "
    "--add-header 'Connection: close' (its --http11-socket keep-alive pins a connection to a "
    "worker and starves the rest of wrk's connections); --socket / --scgi-socket behind nginx.",
    "gunicorn": "Gunicorn: the gthread worker (keeps connections alive; the sync worker closes each).",
    "bjoern": "bjoern: bench/launch.py listens and forks the worker processes; single-threaded, "
    "so it sits out the 500-thread scenario.",
    "pyruvate": "Pyruvate: bench/launch.py forks the worker processes over one socket; Pyruvate's "
    "defaults, which close each connection (its keep-alive pins a connection to a thread too).",
    "nginx": "nginx: not a WSGI server but the ceiling: nginx answering the hello scenarios itself "
    "(return 200) and sending the 1 MiB file (sendfile), with as many workers as the scenario has; "
    "what wrk can drive on this machine for that response.",
}


def parse_args(argv):
    """The command line."""
    p = argparse.ArgumentParser(description="rwsgi vs peers benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="5 s runs, 1 s warm-up, 1 repetition")
    p.add_argument("--scenarios", default="", help="comma-separated scenario names (default: all)")
    p.add_argument("--servers", default=",".join(servers.SERVERS), help="comma-separated servers")
    p.add_argument("--duration", type=int, help="seconds of each measured wrk run [20; quick 5]")
    p.add_argument("--warmup", type=int, help="seconds of wrk warm-up before each run [3; quick 1]")
    p.add_argument("--repeat", type=int, help="repetitions of each server per scenario [3; quick 1]")
    p.add_argument("--quiet-wait", type=float,
                   help="before each run, wait up to this many seconds for the machine's load "
                   "to drop under 15%% (0: do not wait) [30; quick 5]")
    p.add_argument("--rwsgi", default=os.path.join(REPO, "target/release/rwsgi"), help="rwsgi binary")
    p.add_argument("--venv", default=os.path.join(HERE, ".venv"), help="virtualenv with the peers")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="results parent directory")
    p.add_argument("--no-latest", action="store_true", help="do not update bench/latest.{md,svg}")
    p.add_argument("--list", action="store_true", help="list scenarios and servers, then exit")
    p.add_argument("--report-only", metavar="DIR",
                   help="rewrite results.md, chart.svg (and latest.*) from DIR/results.json; run nothing")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (5 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.repeat = args.repeat or (1 if quick else 3)
    if args.quiet_wait is None:
        args.quiet_wait = 5 if quick else 30
    return args


def command_output(argv):
    """First line of a command's output (stdout or stderr), or '?'."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    text = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return text[0] if text else "?"


def peer_versions(venv):
    """{server: version} for the peers installed in the venv."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name, dist in json.loads(sys.argv[1]).items():\n"
        "    try: out[name] = m.version(dist)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([f"{venv}/bin/python", "-c", code, json.dumps(servers.DISTRIBUTIONS)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cpu_model():
    """The CPU model name from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def load_average():
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def git_commit():
    """HEAD's short hash, with `+dirty` when the tree has changes."""
    head = command_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return head + ("+dirty" if dirty else "")


def meta_for(args, chosen, versions, has_processes, selected):
    """Facts about the machine and settings, and notes for the reader."""
    facts = {
        "rwsgi": f"{command_output([args.rwsgi, '--version'])} (git {git_commit()})",
        "peers": ", ".join(f"{k} {v}" for k, v in versions.items()) or "none",
        "machine": f"{os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}",
        "python": command_output([f"{args.venv}/bin/python", "--version"]),
        "tools": f"{command_output(['wrk', '-v'])}; {command_output(['nginx', '-v'])}",
        "settings": f"{args.duration} s runs after {args.warmup} s warm-up, {args.repeat} repetition(s), "
        f"servers interleaved; wrk -t2 --timeout 10s on the same machine; each run waits up to "
        f"{args.quiet_wait:.0f} s for the machine's load to drop under {runner.QUIET_PCT:.0f} %",
        "load average at start": load_average(),
    }
    notes = [
        "wrk, nginx and the server share the machine's cores; numbers compare servers on this "
        "machine, not absolute capacity.",
        "The machine may be shared (other sessions compile and test here): the 'other load %' "
        "column says how much CPU the rest of the machine used during each run.",
    ]
    if "rwsgi" in chosen and not has_processes:
        notes.append("This rwsgi build has no --processes yet: rwsgi ran as ONE process with "
                     "processes x threads Python threads (e.g. 1 x 2 where peers ran 2 x 1).")
    missing = [s for s in args.servers.split(",") if s and s not in chosen]
    if missing:
        notes.append(f"Not run (not installed or unknown): {', '.join(missing)}.")
    notes += [note for name, note in PEER_NOTES.items() if name in chosen]
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "facts": facts,
            "notes": notes, "scenarios": [s.name for s in selected], "servers": chosen,
            "has_processes": has_processes}


def run_all(ctx, selected, chosen, repeat, save):
    """Every scenario, repetition and server, in interleaved order."""
    runs = []
    for sc in selected:
        names = [n for n in chosen if servers.SERVERS[n].supports(sc)]
        for rep in range(repeat):
            for name in names:
                t0 = time.monotonic()
                result = runner.run_once(ctx, sc, name, rep)
                runs.append(result)
                print(progress_line(result, time.monotonic() - t0), flush=True)
                save(runs)
    return runs


def progress_line(r, took):
    """One line per run on stdout."""
    head = f"[{r['scenario']:>18} rep {r['rep']}] {r['server']:>9}"
    if r.get("waited_for_quiet_s", 0) >= 1:
        head += f" (waited {r['waited_for_quiet_s']:.0f} s for a quiet machine)"
    if "failure" in r:
        return f"{head}: FAILED {r['failure']} ({took:.0f} s)"
    return (f"{head}: {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
            f"err {r['non_2xx'] + r['socket_errors']:>5}  {r['cpu_us_per_req']:6,.0f} µs/req "
            f"(kernel {r['kernel_us_per_req']:4,.1f})  {r['sleeps_per_req']:5.2f} sleeps/req  "
            f"{r['peak_rss_mib']:6.1f} MiB  other {r['other_load_pct']:3.0f}%  ({took:.0f} s)")


def choose_servers(args, versions):
    """The requested servers that can run here."""
    chosen = []
    for name in [s for s in args.servers.split(",") if s]:
        if name not in servers.SERVERS:
            raise SystemExit(f"unknown server {name}; known: {', '.join(servers.SERVERS)}")
        if name == "rwsgi" and not os.access(args.rwsgi, os.X_OK):
            print(f"rwsgi binary {args.rwsgi} missing: skipping rwsgi", file=sys.stderr)
        elif name == "nginx" and harness_nginx.binary() is None:
            print("nginx is not installed: skipping the nginx ceiling", file=sys.stderr)
        elif name not in ("rwsgi", "nginx") and name not in versions:
            print(f"{name} is not installed in {args.venv}: skipping it", file=sys.stderr)
        else:
            chosen.append(name)
    return chosen


def main(argv):
    """Runs the benchmark and writes the results."""
    args = parse_args(argv)
    if args.list:
        for sc in scenarios.SCENARIOS:
            print(f"{sc.name:>18}  {sc.title}")
        print("servers:", ", ".join(servers.SERVERS))
        return 0
    if args.report_only:
        with open(os.path.join(args.report_only, "results.json")) as f:
            saved = json.load(f)
        write_outputs(args, args.report_only, saved["meta"], saved["runs"], saved["meta"]["servers"])
        return 0
    selected = scenarios.select([s for s in args.scenarios.split(",") if s])
    versions = peer_versions(args.venv)
    chosen = choose_servers(args, versions)
    has_processes = "rwsgi" in chosen and servers.rwsgi_has_processes(args.rwsgi)
    meta = meta_for(args, chosen, versions, has_processes, selected)
    out = os.path.join(args.out, datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S"))
    logs = os.path.join(out, "logs")
    os.makedirs(logs)
    paths = servers.Paths(repo=REPO, venv=args.venv, apps=os.path.join(HERE, "apps"), rwsgi=args.rwsgi)
    env = dict(os.environ, BENCH_FILE=os.path.join(out, "file-1MiB.bin"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    ctx = runner.Context(paths, env, logs, args.duration, args.warmup, has_processes, args.quiet_wait)
    print(f"results in {out}", flush=True)
    started = time.monotonic()
    runs = run_all(ctx, selected, chosen, args.repeat,
                   lambda rs: report.write_json(os.path.join(out, "results.json"), meta, rs))
    meta["facts"]["wall time"] = f"{(time.monotonic() - started) / 60:.1f} min"
    write_outputs(args, out, meta, runs, chosen)
    return 0


def write_outputs(args, out, meta, runs, chosen):
    """results.{json,md}, chart.svg, and the latest.{md,svg} copies."""
    report.write_json(os.path.join(out, "results.json"), meta, runs)
    subtitle = f"{meta['date']}, {meta['facts']['rwsgi']}, {meta['facts']['machine']}"
    if "rwsgi" in chosen and not meta["has_processes"]:
        subtitle += "; rwsgi as 1 process x (processes x threads) threads"
    chart.write(os.path.join(out, "chart.svg"), report.summarise(runs), meta["scenarios"], chosen, subtitle)
    report.write_markdown(os.path.join(out, "results.md"), meta, runs, chosen, "chart.svg")
    if not args.no_latest:
        shutil.copy(os.path.join(out, "chart.svg"), os.path.join(HERE, "latest.svg"))
        report.write_markdown(os.path.join(HERE, "latest.md"), meta, runs, chosen, "latest.svg")
    print(f"wrote {out}/results.md, results.json, chart.svg", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
