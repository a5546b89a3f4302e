"""One measured run: start a server (and nginx), check it answers, warm up,
run wrk while sampling the process tree, stop everything.

What a run records: the exact command lines, wrk's numbers, the server
tree's CPU time (before/after from /proc) and peak RSS (sampled every
100 ms while wrk runs), nginx's CPU time, and how busy the rest of the
machine was (every process that is not ours: `other_load_pct`, in percent
of all cores), because on a shared 2-core machine another build can skew a
run and the table should say so.
"""

import http.client
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from . import nginx, procs, servers, wrk


@dataclass
class Context:
    """What every run needs: paths, settings and where to write logs."""

    paths: servers.Paths
    env: dict
    logs: str
    duration: int
    warmup: int
    has_processes: bool
    quiet_wait: float = 0.0


QUIET_PCT = 15.0


def machine_load_pct(interval=1.0):
    """How busy all cores were over `interval` seconds, in percent."""
    busy0 = procs.machine_busy_ticks()
    time.sleep(interval)
    busy1 = procs.machine_busy_ticks()
    return (busy1 - busy0) / procs.CLK_TCK / (interval * os.cpu_count()) * 100


def wait_until_quiet(max_wait):
    """Before a run, while none of ours is running: waits up to `max_wait`
    seconds for the machine's load to drop under QUIET_PCT. Returns the
    seconds waited and the last load seen."""
    start = time.monotonic()
    load = machine_load_pct()
    while load >= QUIET_PCT and time.monotonic() - start < max_wait:
        load = machine_load_pct(2.0)
    return time.monotonic() - start, load


def listen_for(route, workdir):
    """Where the server listens for a scenario's route."""
    if route.endswith("unix"):
        return servers.Listen("unix", os.path.join(workdir, "app.sock"))
    return servers.Listen("tcp", f"127.0.0.1:{procs.free_port()}")


def check_response(port, sc, timeout=30.0):
    """Sends one request like wrk's and checks the status and body length;
    retries until `timeout` while workers are still starting."""
    deadline = time.monotonic() + timeout
    body = b"x" * sc.body_bytes if sc.body_bytes else None
    last = "no answer"
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST" if body else "GET", "/", body=body)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200 and len(data) == sc.expect_bytes:
                return
            last = f"status {resp.status}, {len(data)} body bytes (want 200, {sc.expect_bytes})"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"sanity request failed: {last}")


def measure(ctx, sc, server, front, url, log):
    """Runs wrk once and measures the server tree around it."""
    cmd = wrk.argv(f"{ctx.paths.repo}/bench/wrk/report.lua", url, sc.connections, ctx.duration)
    before, busy0, self0 = procs.all_stats(), procs.machine_busy_ticks(), procs.own_and_children_ticks()
    sleeps0 = procs.sleeps(procs.tree_pids(server.pid, before))
    start = time.monotonic()
    with procs.RssSampler(server.pid) as rss:
        res = wrk.run(cmd, sc.body_bytes, log)
    wall = time.monotonic() - start
    after, busy1, self1 = procs.all_stats(), procs.machine_busy_ticks(), procs.own_and_children_ticks()
    sleeps1 = procs.sleeps(procs.tree_pids(server.pid, after))
    server_ticks = procs.tree_ticks(server.pid, after) - procs.tree_ticks(server.pid, before)
    kernel_ticks = procs.tree_kernel_ticks(server.pid, after) - procs.tree_kernel_ticks(server.pid, before)
    nginx_ticks = 0
    if front is not None:
        ng = front.proc.pid
        nginx_ticks = procs.tree_ticks(ng, after) - procs.tree_ticks(ng, before)
        res["nginx_cpu_s"] = nginx_ticks / procs.CLK_TCK
    # Everything the machine did minus the server, nginx, wrk and this harness.
    other = (busy1 - busy0) - server_ticks - nginx_ticks - (self1 - self0)
    res.update(
        wrk_argv=cmd,
        server_cpu_s=server_ticks / procs.CLK_TCK,
        cpu_us_per_req=server_ticks / procs.CLK_TCK / max(res["requests"], 1) * 1e6,
        # The part the kernel spent on the server's behalf (its syscalls:
        # accept, read, write, close, epoll): a floor that no user-space
        # work removes while the syscalls stay the same.
        kernel_us_per_req=kernel_ticks / procs.CLK_TCK / max(res["requests"], 1) * 1e6,
        # How often the server's threads went to sleep (and so had to be
        # woken) per request: each is a wake-up that may preempt nginx or wrk.
        sleeps_per_req=(sleeps1 - sleeps0) / max(res["requests"], 1),
        peak_rss_mib=rss.peak_kib / 1024,
        peak_pss_mib=rss.peak_pss_kib / 1024,
        other_load_pct=max(other, 0) / procs.CLK_TCK / (wall * os.cpu_count()) * 100,
        busiest_others=busiest(before, after, set(procs.tree_pids(os.getpid(), after))),
    )
    return res


def busiest(before, after, ours, top=3):
    """The names of the other processes that used the most CPU in the run
    (their own time only: a shell reaping a long build is not busy)."""
    deltas = {}
    for pid, st in after.items():
        if pid not in ours:
            used = st.own - (before[pid].own if pid in before else 0)
            if used > 0:
                deltas[st.comm] = deltas.get(st.comm, 0) + used
    ranked = sorted(deltas.items(), key=lambda kv: -kv[1])[:top]
    return [f"{comm} {ticks / procs.CLK_TCK:.1f}s" for comm, ticks in ranked]


def run_once(ctx, sc, name, rep):
    """One run of server `name` on scenario `sc`; never raises for a server
    that misbehaves (the failure is recorded instead)."""
    workdir = tempfile.mkdtemp(prefix=f"rwsgi-bench-{sc.name}-{name}-")
    listen = listen_for(sc.route, workdir)
    argv = servers.argv_for(name, ctx.paths, sc, listen, ctx.has_processes, workdir, ctx.env)
    log = os.path.join(ctx.logs, f"{sc.name}.{name}.{rep}.log")
    result = {"scenario": sc.name, "server": name, "rep": rep, "argv": argv}
    if ctx.quiet_wait > 0:
        waited, load = wait_until_quiet(ctx.quiet_wait)
        result.update(waited_for_quiet_s=round(waited, 1), load_before_pct=round(load, 1))
    server = procs.start(argv, log, env=ctx.env, cwd=ctx.paths.apps)
    front = None
    try:
        procs.wait_listening(server, listen.connect_addr)
        port = int(listen.addr.rsplit(":", 1)[1]) if not sc.proxied else None
        if sc.proxied:
            front = nginx.Nginx(os.path.join(workdir, "nginx"), sc.route, listen)
            result.update(nginx_argv=front.argv, nginx_conf=front.conf)
            front.start(log)
            port = front.port
        check_response(port, sc)
        url = f"http://127.0.0.1:{port}/"
        if ctx.warmup > 0:
            warm = wrk.argv(f"{ctx.paths.repo}/bench/wrk/report.lua", url, sc.connections, ctx.warmup)
            wrk.run(warm, sc.body_bytes, log)
        result.update(measure(ctx, sc, server, front, url, log))
    except Exception as e:  # a broken server is a result, not a crash of the harness
        result["failure"] = f"{type(e).__name__}: {e}"
    finally:
        if front is not None:
            front.stop()
        procs.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
    return result
