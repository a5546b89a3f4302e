"""Results: per (scenario, server) summaries, results.json and results.md.

A summary takes the median over repetitions of req/s, p50, p99 and CPU per
request, the sum of errors, and the largest peak RSS and other-load figure.
The Markdown has one table per scenario, then every exact command line
(servers, wrk, nginx with its generated config).
"""

import json
import os
import shlex
import statistics
import tempfile

from .scenarios import BY_NAME

LOAD_WARNING_PCT = 10.0


def summarise(runs):
    """{scenario: {server: summary}} from the list of run results."""
    grouped = {}
    for run in runs:
        grouped.setdefault(run["scenario"], {}).setdefault(run["server"], []).append(run)
    return {sc: {srv: summary(rs) for srv, rs in servers.items()} for sc, servers in grouped.items()}


def summary(runs):
    """One server's numbers on one scenario over its repetitions."""
    ok = [r for r in runs if "failure" not in r]
    out = {"runs": len(runs), "failed": len(runs) - len(ok), "failures": [r["failure"] for r in runs if "failure" in r]}
    if not ok:
        return out

    def med(key):
        return statistics.median(r[key] for r in ok)

    out.update(
        rps=med("rps"),
        rps_runs=[round(r["rps"], 1) for r in ok],
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        errors=sum(r["non_2xx"] + r["socket_errors"] for r in ok),
        non_2xx=sum(r["non_2xx"] for r in ok),
        socket_errors=sum(r["socket_errors"] for r in ok),
        errors_detail={k: sum(r["errors_detail"][k] for r in ok) for k in ok[0]["errors_detail"]},
        cpu_us_per_req=med("cpu_us_per_req"),
        kernel_us_per_req=med("kernel_us_per_req") if all("kernel_us_per_req" in r for r in ok) else None,
        sleeps_per_req=med("sleeps_per_req") if all("sleeps_per_req" in r for r in ok) else None,
        peak_rss_mib=max(r["peak_rss_mib"] for r in ok),
        peak_pss_mib=max((r.get("peak_pss_mib") or 0) for r in ok) or None,
        other_load_pct=max(r["other_load_pct"] for r in ok),
    )
    return out


def write_json(path, meta, runs):
    """results.json: the run metadata, every run and the summaries."""
    with open(path, "w") as f:
        json.dump({"meta": meta, "summary": summarise(runs), "runs": runs}, f, indent=2)


def fmt(value, spec):
    """A number formatted with `spec`, or an em dash."""
    return "—" if value is None else format(value, spec)


def error_cell(s):
    """Total errors, then which kinds when there are any."""
    kinds = {k: v for k, v in s["errors_detail"].items() if v}
    if not kinds:
        return "0"
    return f"{s['errors']} (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")"


def scenario_table(sc_name, by_server, order):
    """The Markdown table for one scenario."""
    sc = BY_NAME[sc_name]
    lines = [
        f"### {sc.title}",
        "",
        f"`{sc.name}`: app `{sc.app}`, {sc.processes} processes x {sc.threads} "
        f"thread{'s' if sc.threads != 1 else ''}, "
        f"wrk c={sc.connections}{', POST ' + str(sc.body_bytes) + ' B' if sc.body_bytes else ''}",
        "",
        "| server | req/s | p50 ms | p99 ms | errors | CPU µs/req | kernel µs/req | sleeps/req | peak RSS MiB | peak PSS MiB | other load % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in order:
        s = by_server.get(name)
        if s is None:
            continue
        if "rps" not in s:
            lines.append(f"| {name} | failed: {s['failures'][0][:80]} | | | | | | | | | |")
            continue
        errors = error_cell(s)
        load = fmt(s["other_load_pct"], ".0f") + (" ⚠" if s["other_load_pct"] > LOAD_WARNING_PCT else "")
        lines.append(
            f"| {name} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {errors} | "
            f"{s['cpu_us_per_req']:,.0f} | {fmt(s.get('kernel_us_per_req'), ',.1f')} | {fmt(s.get('sleeps_per_req'), '.2f')} | {s['peak_rss_mib']:.1f} | {fmt(s.get('peak_pss_mib'), '.1f')} | {load} |"
        )
    return lines


def versus_table(summaries, scenario_names):
    """rwsgi against the best peer of each scenario (most req/s; nginx,
    the ceiling, is not a peer), as ratios measured in this one run."""
    lines = [
        "## rwsgi against the best peer",
        "",
        "Ratios from the medians above. The ceiling is nginx answering the same request itself "
        "(the load generator's limit for that response), where measured.",
        "",
        "| scenario | rwsgi req/s | best peer | its req/s | req/s ratio | rwsgi CPU µs/req (kernel) | "
        "peer CPU µs/req (kernel) | ceiling req/s | rwsgi peak RSS / PSS MiB | peer peak RSS / PSS MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc_name in scenario_names:
        by_server = summaries.get(sc_name, {})
        ours = by_server.get("rwsgi")
        peers = {n: s for n, s in by_server.items() if n not in ("rwsgi", "nginx") and "rps" in s}
        if not ours or "rps" not in ours or not peers:
            continue
        best_name, best = max(peers.items(), key=lambda kv: kv[1]["rps"])
        ceiling = by_server.get("nginx", {}).get("rps")

        def memory(s):
            return f"{s['peak_rss_mib']:.1f} / {fmt(s.get('peak_pss_mib'), '.1f')}"

        def cpu(s):
            return f"{s['cpu_us_per_req']:,.1f} ({fmt(s.get('kernel_us_per_req'), ',.1f')})"

        lines.append(
            f"| {sc_name} | {ours['rps']:,.0f} | {best_name} | {best['rps']:,.0f} | "
            f"{ours['rps'] / best['rps']:.2f} | {cpu(ours)} | {cpu(best)} | "
            f"{fmt(ceiling, ',.0f')} | {memory(ours)} | {memory(best)} |"
        )
    return lines + [""]


def command_lines(runs):
    """The exact command lines, one block per scenario (first repetition)."""
    lines = ["## Command lines", "",
             "Socket paths and ports change from run to run. `$REPO` is the checkout, `$TMP` the "
             "temp directory.", ""]
    seen = set()
    for run in runs:
        key = (run["scenario"], run["server"])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- `{run['scenario']}` / **{run['server']}**: `{shlex.join(run['argv'])}`")
        if "wrk_argv" in run:
            lines.append(f"  - wrk: `{shlex.join(run['wrk_argv'])}`")
        if "nginx_argv" in run:
            lines.append(f"  - nginx: `{shlex.join(run['nginx_argv'])}`")
    configs = {run["scenario"]: run["nginx_conf"] for run in runs if "nginx_conf" in run}
    for sc_name, conf in configs.items():
        lines += ["", f"<details><summary>nginx.conf for <code>{sc_name}</code></summary>", "",
                  "```nginx", conf.rstrip(), "```", "", "</details>"]
    return lines


def header(meta):
    """The opening section: when, what, on which machine, with which settings."""
    lines = [f"# rwsgi benchmark — {meta['date']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta["facts"].items()]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    return lines


def write_markdown(path, meta, runs, order, chart_name=None):
    """results.md: header, one table per scenario, command lines."""
    summaries = summarise(runs)
    lines = header(meta)
    if chart_name:
        lines += [f"![req/s per scenario]({chart_name})", ""]
    lines += ["## Results", "",
              "req/s counts responses with a status below 400 only (wrk's own figure also counts "
              "errors such as 503s). Medians over repetitions; errors are wrk's socket errors (connect, read, write, "
              "timeout) plus responses with status ≥ 400 (`status`), summed over repetitions. "
              "wrk also counts a `read` error each time a server ends a body that has no length "
              "by closing the connection (the response itself is complete and counted), so in the "
              "streaming scenario `read` errors mostly mean 'no chunked encoding'. CPU is the whole server process tree's user + system time "
              "divided by the requests served, kernel its system time alone (what the kernel did for the "
              "server's syscalls); other load is the CPU that processes outside the "
              "benchmark used meanwhile, in % of all cores (⚠ above "
              f"{LOAD_WARNING_PCT:.0f} %: the run shared the machine).", ""]
    names = [s for s in meta["scenarios"] if s in summaries]
    for sc_name in names:
        lines += scenario_table(sc_name, summaries[sc_name], order) + [""]
    lines += versus_table(summaries, names)
    lines += command_lines(runs)
    with open(path, "w") as f:
        f.write(portable("\n".join(lines) + "\n"))


def portable(text):
    """`text` without this machine's paths: the checkout becomes `$REPO`,
    the temp directory `$TMP` (results.json keeps them as they were)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = text.replace(repo + "/", "$REPO/")
    return text.replace(tempfile.gettempdir().rstrip("/") + "/", "$TMP/")
