//! Renders a [`Snapshot`] as uWSGI-style stats JSON or Prometheus text.

use std::fmt::Write;

use serde_json::json;

use super::Snapshot;
use crate::master::scoreboard::LATENCY_BUCKETS;

/// The JSON uWSGI's stats server sends, with the keys `uwsgitop` and the
/// uWSGI exporters read.
pub fn uwsgi_json(s: &Snapshot) -> String {
    let sockets: Vec<_> = s
        .sockets
        .iter()
        .map(|sock| {
            json!({
                "name": sock.name,
                "proto": sock.proto,
                "queue": sock.queue,
                "max_queue": sock.max_queue,
                "shared": 0,
                "can_offload": 0,
            })
        })
        .collect();
    let workers: Vec<_> = s
        .workers
        .iter()
        .map(|w| {
            let cores: Vec<_> = w
                .cores
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "requests": c.requests,
                        "static_requests": 0,
                        "routed_requests": 0,
                        "offloaded_requests": 0,
                        "write_errors": 0,
                        "read_errors": 0,
                        "in_request": u8::from(c.in_request),
                        "vars": [],
                        "req_info": {},
                    })
                })
                .collect();
            json!({
                "id": w.id,
                "pid": w.pid,
                "accepting": 1,
                "requests": w.requests,
                "delta_requests": 0,
                "exceptions": w.exceptions,
                "harakiri_count": w.harakiri_count,
                "signals": 0,
                "signal_queue": 0,
                "status": if w.busy > 0 { "busy" } else { "idle" },
                "rss": w.rss,
                "vsz": w.vsz,
                "running_time": w.running_time,
                "last_spawn": w.last_spawn,
                "respawn_count": w.respawn_count,
                "tx": w.tx,
                "connections": w.connections,
                "avg_rt": w.avg_rt(),
                "apps": [],
                "cores": cores,
            })
        })
        .collect();
    let listen_queue: u32 = s.sockets.iter().map(|x| x.queue).sum();
    let busy: u32 = s.workers.iter().map(|w| w.busy).sum();
    let mut stats = json!({
        "version": format!("rwsgi-{}", env!("CARGO_PKG_VERSION")),
        "listen_queue": listen_queue,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": busy,
        "pid": s.pid,
        "uid": s.uid,
        "gid": s.gid,
        "cwd": s.cwd,
        "locks": [],
        "sockets": sockets,
        "workers": workers,
    });
    // As in uWSGI, the key is there only when there are daemons.
    if !s.daemons.is_empty() {
        let daemons: Vec<_> = s
            .daemons
            .iter()
            .map(|d| json!({"cmd": d.cmd, "pid": d.pid, "respawns": d.respawns}))
            .collect();
        stats["daemons"] = json!(daemons);
    }
    stats.to_string()
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let protocols = ["http", "uwsgi", "scgi"];
    header(
        &mut out,
        "rwsgi_requests_total",
        "counter",
        "Requests served, by protocol and status class.",
    );
    for (p, row) in protocols.iter().zip(s.totals.by_status.iter()) {
        for (class, count) in row.iter().enumerate() {
            let _ = writeln!(
                out,
                "rwsgi_requests_total{{protocol=\"{p}\",status=\"{}xx\"}} {count}",
                class + 1
            );
        }
    }
    header(
        &mut out,
        "rwsgi_request_duration_seconds",
        "histogram",
        "Time from the request head to the end of the response.",
    );
    let mut cumulative = 0u64;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += s.totals.latency.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "rwsgi_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += s
        .totals
        .latency
        .get(LATENCY_BUCKETS.len())
        .copied()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "rwsgi_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "rwsgi_request_duration_seconds_sum {}",
        s.totals.latency_sum_micros as f64 / 1e6
    );
    let _ = writeln!(out, "rwsgi_request_duration_seconds_count {cumulative}");
    header(
        &mut out,
        "rwsgi_app_exceptions_total",
        "counter",
        "Requests whose app raised.",
    );
    let _ = writeln!(out, "rwsgi_app_exceptions_total {}", s.totals.exceptions);
    header(
        &mut out,
        "rwsgi_response_bytes_total",
        "counter",
        "Response body bytes sent.",
    );
    let _ = writeln!(out, "rwsgi_response_bytes_total {}", s.totals.tx);
    header(
        &mut out,
        "rwsgi_busy_threads",
        "gauge",
        "Python threads running a request.",
    );
    let _ = writeln!(
        out,
        "rwsgi_busy_threads {}",
        s.workers.iter().map(|w| w.busy).sum::<u32>()
    );
    header(
        &mut out,
        "rwsgi_threads",
        "gauge",
        "Python threads in all workers.",
    );
    let _ = writeln!(
        out,
        "rwsgi_threads {}",
        s.threads as usize * s.workers.len()
    );
    header(
        &mut out,
        "rwsgi_queue_depth",
        "gauge",
        "Requests waiting for a Python thread.",
    );
    let _ = writeln!(
        out,
        "rwsgi_queue_depth {}",
        s.workers.iter().map(|w| w.queued).sum::<u32>()
    );
    header(
        &mut out,
        "rwsgi_worker_connections",
        "gauge",
        "Connections open, by worker (they spread evenly when balanced).",
    );
    for w in &s.workers {
        let _ = writeln!(
            out,
            "rwsgi_worker_connections{{worker=\"{}\"}} {}",
            w.id, w.connections
        );
    }
    header(
        &mut out,
        "rwsgi_listen_queue",
        "gauge",
        "Connections waiting to be accepted.",
    );
    for sock in &s.sockets {
        let _ = writeln!(
            out,
            "rwsgi_listen_queue{{socket=\"{}\"}} {}",
            escape(&sock.name),
            sock.queue
        );
    }
    header(&mut out, "rwsgi_workers", "gauge", "Live worker processes.");
    let _ = writeln!(out, "rwsgi_workers {}", s.workers.len());
    header(
        &mut out,
        "rwsgi_worker_restarts_total",
        "counter",
        "Workers started again (respawn, reload, recycling).",
    );
    let _ = writeln!(out, "rwsgi_worker_restarts_total {}", s.worker_restarts);
    header(
        &mut out,
        "rwsgi_worker_resident_bytes",
        "gauge",
        "Resident memory of each worker.",
    );
    for w in &s.workers {
        let _ = writeln!(
            out,
            "rwsgi_worker_resident_bytes{{worker=\"{}\"}} {}",
            w.id, w.rss
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{SocketStat, WorkerStat};

    fn sample() -> Snapshot {
        Snapshot {
            pid: 10,
            threads: 2,
            sockets: vec![SocketStat {
                name: "http://127.0.0.1:8000".into(),
                proto: "http".into(),
                queue: 3,
                max_queue: 1024,
            }],
            workers: vec![WorkerStat {
                id: 1,
                pid: 11,
                requests: 4,
                running_time: 400,
                busy: 1,
                connections: 7,
                ..WorkerStat::default()
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn json_has_the_keys_uwsgitop_reads() {
        let v: serde_json::Value = serde_json::from_str(&uwsgi_json(&sample())).unwrap();
        assert_eq!(v["listen_queue"], 3);
        let w = &v["workers"][0];
        for key in [
            "id",
            "pid",
            "requests",
            "exceptions",
            "status",
            "avg_rt",
            "rss",
            "vsz",
            "tx",
            "respawn_count",
            "harakiri_count",
            "running_time",
            "last_spawn",
            "cores",
        ] {
            assert!(w.get(key).is_some(), "missing {key}");
        }
        assert_eq!(w["avg_rt"], 100);
        assert_eq!(w["status"], "busy");
        assert_eq!(w["connections"], 7);
    }

    #[test]
    fn prometheus_has_each_workers_open_connections() {
        let text = prometheus(&sample());
        assert!(
            text.contains("rwsgi_worker_connections{worker=\"1\"} 7\n"),
            "{text}"
        );
    }

    #[test]
    fn prometheus_histogram_is_cumulative() {
        let mut s = sample();
        s.totals.latency = vec![1; LATENCY_BUCKETS.len() + 1];
        let text = prometheus(&s);
        assert!(text.contains("rwsgi_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains(&format!(
            "rwsgi_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            LATENCY_BUCKETS.len() + 1
        )));
    }
}
