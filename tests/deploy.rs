//! The shipped deployment files, run or validated as shipped:
//!
//! - every `nginx/` file, rendered (only paths and ports replaced, see
//!   `tests/common/deploy/mod.rs`) and run by a real nginx in front of the real
//!   binary: the app answers through it, nginx serves the static files;
//! - `nginx/nginx.conf` as shipped, run the way its header says
//!   (`nginx -p DIR -c nginx.conf`) with `nginx/http.conf` rendered beside it;
//! - `nginx/upstream.conf` in front of three rwsgi instances under steady
//!   load while one is SIGKILLed and later restarted;
//! - `deploy/docker-compose.yml` against the Compose specification, and
//!   its topology (nginx + two replicas on one socket directory, started
//!   with the file's own entrypoint, command and healthcheck) without
//!   Docker;
//! - `deploy/kubernetes/` with kubernetes-validate, and the numbers that
//!   must agree across files (grace periods, slots, the sidecar's config).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::deploy::*;
use common::libc_sig;
use serde_json::Value;

/// Every file of `nginx/`; each has a test below that runs it.
const NGINX_FILES: [&str; 6] = [
    "http.conf",
    "nginx.conf",
    "scgi.conf",
    "upstream.conf",
    "uwsgi-tcp.conf",
    "uwsgi-unix.conf",
];

/// `key=value` fields of master_app.py's answer.
fn fields(body: &str) -> HashMap<String, String> {
    body.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_nginx_file_is_run_by_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(common::repo().join("nginx"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, NGINX_FILES, "add a test for each new nginx/ file");
}

/// Starts rwsgi with the pep3333 app on `listener` (args from the
/// rendering), nginx with `nginx/<name>`, and checks a GET, a POST and a
/// static file through it.
fn site_serves_the_app_and_static_files(name: &str, listener: fn(&Rendering) -> Vec<String>) {
    let dir = common::temp_dir(name);
    let r = Rendering::new(&dir);
    let mut args = listener(&r);
    args.extend([
        "--wsgi-file".into(),
        arg(common::apps().join("pep3333.py")),
        "--threads".into(),
        "4".into(),
    ]);
    let mut rwsgi = Instance::rwsgi(&args, &dir.join("rwsgi.log"));
    match args[1].strip_prefix("127.0.0.1:") {
        Some(_) => rwsgi.wait_tcp(&args[1]),
        None => rwsgi.wait_unix(Path::new(&args[1])),
    }
    let nginx = SiteNginx::start(name, &r);
    let context = || format!("{}\n--- rwsgi ---\n{}", nginx.logs(), rwsgi.log());

    let r1 = nginx.get("/a%20b?q=1");
    assert_eq!(r1.status, 200, "{}\n{}", r1.text(), context());
    let environ: Value = serde_json::from_slice(&r1.body).unwrap();
    assert_eq!(environ["environ"]["PATH_INFO"], "/a b", "{}", r1.text());
    assert_eq!(environ["environ"]["QUERY_STRING"], "q=1");
    assert_eq!(environ["environ"]["REQUEST_METHOD"], "GET");

    let body = b"a body that goes through nginx to the app";
    let r2 = nginx.request("POST", "/echo", body).unwrap();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &body[..]),
        "{}",
        context()
    );

    let css = "body { color: #222 }\n";
    std::fs::write(r.static_dir().join("site.css"), css).unwrap();
    let r3 = nginx.get("/static/site.css");
    assert_eq!((r3.status, r3.text().as_str()), (200, css), "{}", context());
    assert_eq!(r3.header("content-type"), Some("text/css"));
    assert_eq!(nginx.get("/static/missing.css").status, 404);
    assert!(
        !rwsgi.log().contains("/static/"),
        "a static file reached rwsgi:\n{}",
        rwsgi.log()
    );
    drop(nginx);
    drop(rwsgi);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nginx_uwsgi_unix_conf_serves_the_app_and_static_files() {
    site_serves_the_app_and_static_files("uwsgi-unix.conf", |r| {
        vec!["--uwsgi-socket".into(), arg(r.run_dir().join("app.sock"))]
    });
}

#[test]
fn nginx_uwsgi_tcp_conf_serves_the_app_and_static_files() {
    site_serves_the_app_and_static_files("uwsgi-tcp.conf", |r| {
        vec!["--uwsgi-socket".into(), r.uwsgi_tcp.clone()]
    });
}

#[test]
fn nginx_scgi_conf_serves_the_app_and_static_files() {
    site_serves_the_app_and_static_files("scgi.conf", |r| {
        vec!["--scgi-socket".into(), r.scgi.clone()]
    });
}

#[test]
fn nginx_http_conf_serves_the_app_and_static_files() {
    site_serves_the_app_and_static_files("http.conf", |r| {
        vec!["--http-socket".into(), r.http.clone()]
    });
}

#[test]
fn nginx_upstream_conf_serves_the_app_and_static_files() {
    // One instance on the first slot: the two empty slots cost nothing.
    site_serves_the_app_and_static_files("upstream.conf", |r| {
        vec!["--uwsgi-socket".into(), arg(r.run_dir().join("app-1.sock"))]
    });
}

/// nginx started as `nginx -p <prefix> -c nginx.conf`, exactly as
/// `nginx/nginx.conf` says to: a master and its workers, in the
/// foreground. Stopped by the master's pid (SIGQUIT, then SIGKILL).
struct PrefixNginx {
    child: std::process::Child,
    prefix: PathBuf,
}

impl PrefixNginx {
    /// Starts it and waits until it listens on `addr` with its own pid
    /// file written (someone else may hold a port that accepts). `Err`
    /// carries its logs.
    fn start(prefix: &Path, addr: &str) -> Result<PrefixNginx, String> {
        let out = std::fs::File::create(prefix.join("stderr.log")).unwrap();
        let child = Command::new(common::nginx::nginx_binary())
            .arg("-p")
            .arg(prefix)
            .args(["-c", "nginx.conf"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start nginx (run scripts/test.sh to install it)");
        let mut nginx = PrefixNginx {
            child,
            prefix: prefix.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited ({status})\n{}", nginx.logs()));
            }
            let pid = std::fs::read_to_string(prefix.join("nginx.pid")).unwrap_or_default();
            if pid.trim() == nginx.child.id().to_string()
                && std::net::TcpStream::connect(addr).is_ok()
            {
                return Ok(nginx);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("nginx did not listen in 10 s\n{}", nginx.logs()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its stderr and error log.
    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.prefix.join(name)).unwrap_or_default();
        format!(
            "--- nginx stderr ---\n{}--- nginx error.log ---\n{}",
            read("stderr.log"),
            read("error.log")
        )
    }

    /// SIGQUIT (nginx's graceful stop) to the master; its exit status if
    /// it exits within `secs`.
    fn quit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        common::signal(self.child.id(), libc_sig::SIGQUIT);
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for PrefixNginx {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.quit(10).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn nginx_conf_runs_from_its_prefix_in_front_of_http_conf() {
    let dir = common::temp_dir("nginx.conf");
    let r = Rendering::new(&dir);
    let args = [
        "--http-socket".into(),
        r.http.clone(),
        "--wsgi-file".into(),
        arg(common::apps().join("pep3333.py")),
    ];
    let mut rwsgi = Instance::rwsgi(&args, &dir.join("rwsgi.log"));
    rwsgi.wait_tcp(&r.http);

    // The files the header copies: nginx.conf and mime.types as they
    // are, http.conf with its listen (and here its upstream) changed.
    let mut started = None;
    for attempt in 0..3 {
        let prefix = dir.join(format!("prefix-{attempt}"));
        std::fs::create_dir_all(&prefix).unwrap();
        std::fs::write(prefix.join("nginx.conf"), nginx_file("nginx.conf")).unwrap();
        std::fs::copy("/etc/nginx/mime.types", prefix.join("mime.types"))
            .expect("/etc/nginx/mime.types: run scripts/test.sh (it installs nginx)");
        let addr = format!("127.0.0.1:{}", common::free_port());
        std::fs::write(
            prefix.join("http.conf"),
            r.render(&nginx_file("http.conf"), &addr),
        )
        .unwrap();
        match PrefixNginx::start(&prefix, &addr) {
            Ok(nginx) => {
                started = Some((nginx, prefix, addr));
                break;
            }
            Err(logs) if logs.contains("Address already in use") => continue,
            Err(logs) => panic!("nginx -c nginx.conf did not start: {logs}"),
        }
    }
    let (mut nginx, prefix, addr) = started.expect("no free loopback port in 3 tries");
    let context = || format!("{}\n--- rwsgi ---\n{}", nginx.logs(), rwsgi.log());

    let r1 = http_request(&addr, "GET", "/a%20b?q=1", b"").unwrap();
    assert_eq!(r1.status, 200, "{}\n{}", r1.text(), context());
    let environ: Value = serde_json::from_slice(&r1.body).unwrap();
    assert_eq!(environ["environ"]["PATH_INFO"], "/a b", "{}", r1.text());
    let body = b"a body through nginx.conf";
    let r2 = http_request(&addr, "POST", "/echo", body).unwrap();
    assert_eq!((r2.status, r2.body.as_slice()), (200, &body[..]));
    let css = "body { color: #222 }\n";
    std::fs::write(r.static_dir().join("site.css"), css).unwrap();
    let r3 = http_request(&addr, "GET", "/static/site.css", b"").unwrap();
    assert_eq!((r3.status, r3.text().as_str()), (200, css), "{}", context());
    assert_eq!(r3.header("content-type"), Some("text/css"));

    // Its state is all in the prefix.
    for name in [
        "nginx.pid",
        "error.log",
        "access.log",
        "client_body",
        "proxy",
    ] {
        assert!(prefix.join(name).exists(), "no {name} in the prefix");
    }
    // A graceful stop of the master takes its workers along.
    let workers = common::children(nginx.child.id());
    assert!(!workers.is_empty(), "nginx.conf runs a master and workers");
    let status = nginx.quit(10);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        nginx.logs()
    );
    for pid in workers {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} outlived its master"
        );
    }
    drop(rwsgi);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The master pid that imported the app (master_app.py, preloaded) for
/// each answer: which instance served it.
fn masters(bodies: &[String]) -> HashMap<u32, usize> {
    let mut count = HashMap::new();
    for b in bodies {
        let pid = fields(b)["import_pid"].parse().unwrap();
        *count.entry(pid).or_default() += 1;
    }
    count
}

#[test]
fn upstream_fails_over_from_a_sigkilled_instance_and_takes_it_back_after_restart() {
    let dir = common::temp_dir("failover");
    let r = Rendering::new(&dir);
    let app = common::apps().join("master_app.py");
    let socket = |n: usize| r.run_dir().join(format!("app-{n}.sock"));
    let start = |n: usize| {
        let args: Vec<String> = vec![
            "--uwsgi-socket".into(),
            arg(socket(n)),
            "--wsgi-file".into(),
            arg(&app),
            "--processes".into(),
            "2".into(),
            "--threads".into(),
            "2".into(),
        ];
        let mut instance = Instance::rwsgi(&args, &dir.join(format!("rwsgi-{n}.log")));
        instance.wait_unix(&socket(n));
        instance
    };
    let mut instances: Vec<Instance> = (1..=3).map(start).collect();
    let first_masters: Vec<u32> = instances.iter().map(Instance::pid).collect();
    let nginx = SiteNginx::start("upstream.conf", &r);

    // GETs from 6 clients, POSTs (never retried once sent) from one.
    let gets = Load::start(&nginx.addr, "GET", 6);
    let posts = Load::start(&nginx.addr, "POST", 1);
    thread::sleep(Duration::from_millis(1500));
    let killed = instances[1].kill_hard();
    let killed_at = gets.elapsed();
    thread::sleep(Duration::from_secs(2));
    assert!(
        std::os::unix::net::UnixStream::connect(socket(2)).is_err(),
        "instance 2 still answers after SIGKILL of {killed:?}"
    );
    // Restarted on the same socket path (rwsgi removes the stale file).
    instances[1] = start(2);
    let restarted = instances[1].pid();
    let back = wait_until(20, || {
        nginx
            .request("GET", "/", b"")
            .is_ok_and(|r| fields(&r.text()).get("import_pid") == Some(&restarted.to_string()))
    });
    thread::sleep(Duration::from_millis(500));
    let sent = gets.sent() + posts.sent();
    let (gets, posts) = (gets.finish(), posts.finish());
    let context = format!(
        "killed {killed:?} at {killed_at:?}; GET failures {:?}; POST failures {:?}\n{}",
        gets.failed,
        posts.failed,
        nginx.logs()
    );
    assert!(
        back,
        "the restarted instance got no request in 20 s\n{context}"
    );
    // nginx passes a GET to the next instance even when the killed one had
    // it in flight (uwsgi_next_upstream error): not one may fail.
    assert!(gets.failed.is_empty(), "{context}");
    // A POST already sent to the killed instance is not retried (it may
    // have run): at most the one in flight may fail.
    assert!(posts.failed.len() <= 1, "{context}");
    assert!(sent > 300, "only {sent} requests in the whole test");
    let served = masters(&gets.ok);
    eprintln!(
        "{sent} requests; served by master: {served:?}; killed {killed:?} at {killed_at:?}; \
         restarted as {restarted}; failed POSTs: {:?}",
        posts.failed
    );
    for master in first_masters.iter().chain([&restarted]) {
        assert!(
            served.get(master).copied().unwrap_or(0) > 0,
            "instance with master {master} served nothing: {served:?}"
        );
    }
    drop(nginx);
    drop(instances);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compose_file_is_valid_against_the_compose_specification() {
    let check = |file: &Path| {
        run_bounded(
            Command::new(venv_tool("check-jsonschema"))
                .args(["--builtin-schema", "vendor.compose-spec"])
                .arg(file),
            120,
        )
    };
    let compose = deploy_dir().join("docker-compose.yml");
    let (code, out) = check(&compose);
    assert_eq!(code, 0, "{out}");
    // The validator does reject what Compose would: a misspelt key.
    let dir = common::temp_dir("compose-bad");
    let bad = dir.join("docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    assert!(text.contains("stop_grace_period:"));
    std::fs::write(
        &bad,
        text.replace("stop_grace_period:", "stop_grace_periode:"),
    )
    .unwrap();
    let (code, out) = check(&bad);
    assert_ne!(code, 0, "a misspelt key passed:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kubernetes_manifests_are_valid_for_kubernetes_1_29_and_the_newest() {
    let files = manifests();
    for version in [None, Some("1.29")] {
        let mut cmd = Command::new(venv_tool("kubernetes-validate"));
        cmd.arg("--strict");
        if let Some(v) = version {
            cmd.args(["--kubernetes-version", v]);
        }
        let (code, out) = run_bounded(cmd.args(&files), 120);
        assert_eq!(code, 0, "kubernetes {version:?}:\n{out}");
        for file in &files {
            assert!(
                out.contains(&format!("{} passed", file.display())),
                "{} not validated:\n{out}",
                file.display()
            );
        }
    }
}

#[test]
fn rwsgi_healthcheck_passes_on_a_live_socket_and_fails_on_a_dead_one() {
    let script = deploy_dir().join("docker").join("rwsgi-healthcheck");
    let server = common::Server::start(&[
        "--wsgi-file",
        common::apps().join("pep3333.py").to_str().unwrap(),
    ]);
    let uwsgi = format!("unix:{}", server.uwsgi.display());
    let http = format!("http://{}", server.http);
    let check = |args: &[&str], env: &[(&str, &str)]| {
        run_bounded(
            Command::new(&script).args(args).envs(env.iter().copied()),
            30,
        )
    };
    let (code, out) = check(&[&uwsgi], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status 200"), "{out}");
    assert_eq!(check(&[&http, "/environ"], &[]).0, 0);
    // A 404 still proves the app answers; a 500 does not.
    assert_eq!(check(&[&uwsgi, "/nothing-here"], &[]).0, 0);
    let (code, out) = check(&[&uwsgi, "/raise"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("status 500"), "{out}");
    // No argument: the address rwsgi-slot recorded.
    let addr_file = server.dir.join("rwsgi.addr");
    std::fs::write(&addr_file, format!("{uwsgi}\n")).unwrap();
    let (code, out) = check(&[], &[("RWSGI_ADDR_FILE", addr_file.to_str().unwrap())]);
    assert_eq!(code, 0, "{out}");
    let socket = server.uwsgi.clone();
    drop(server);
    assert!(!socket.exists() || std::os::unix::net::UnixStream::connect(&socket).is_err());
    let (code, out) = check(&[&uwsgi], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unhealthy"), "{out}");
}

#[test]
fn compose_stop_grace_period_outlasts_the_graceful_stop_and_slots_match_nginx() {
    let c = compose();
    let rwsgi = &c["services"]["rwsgi"];
    let command = strings(&rwsgi["command"]);
    assert_eq!(rwsgi["stop_signal"], "SIGTERM", "rwsgi's graceful stop");
    let grace = compose_seconds(&rwsgi["stop_grace_period"]);
    let timeout = shutdown_timeout(&command);
    assert!(
        grace > timeout,
        "stop_grace_period {grace} s <= --shutdown-timeout {timeout} s"
    );
    // nginx stops gracefully too, and waits for what rwsgi finishes.
    let nginx = &c["services"]["nginx"];
    assert_eq!(nginx["stop_signal"], "SIGQUIT", "nginx's graceful stop");
    assert!(compose_seconds(&nginx["stop_grace_period"]) >= grace);
    // nginx runs nginx/upstream.conf, whose servers are rwsgi-slot's slots.
    let volumes = strings(&nginx["volumes"]);
    assert!(
        volumes.contains(&"../nginx/upstream.conf:/etc/nginx/conf.d/default.conf:ro".into()),
        "{volumes:?}"
    );
    let slots: usize = rwsgi["environment"]["RWSGI_SLOTS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dir = rwsgi["environment"]["RWSGI_SOCKET_DIR"].as_str().unwrap();
    let expected: Vec<String> = (1..=slots).map(|n| format!("{dir}/app-{n}.sock")).collect();
    assert_eq!(upstream_sockets(), expected);
    let replicas = rwsgi["deploy"]["replicas"].as_u64().unwrap() as usize;
    assert!(
        (2..=slots).contains(&replicas),
        "{replicas} replicas, {slots} slots"
    );
    assert!(volumes.contains(&format!("sockets:{dir}")), "{volumes:?}");
    assert!(strings(&rwsgi["volumes"]).contains(&format!("sockets:{dir}")));
}

/// The pid in the sample app's page ("served by HOST pid N").
fn page_pid(page: &str) -> u32 {
    let after = page.split(" pid ").nth(1).expect("a pid in the page");
    after[..after.find('<').unwrap()].parse().unwrap()
}

/// The `rwsgi-slot:` line of each replica's log.
fn slot_lines(replicas: &[Instance]) -> BTreeSet<String> {
    replicas
        .iter()
        .map(|i| {
            let log = i.log();
            let line = log.lines().find(|l| l.starts_with("rwsgi-slot:"));
            line.unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn compose_topology_runs_without_docker_nginx_and_two_replicas_on_one_socket_dir() {
    let dir = common::temp_dir("compose");
    let stack = Stack::new(&dir);
    let r = &stack.rendering;
    // migrate: migrations, then collectstatic into what nginx serves.
    let (code, out) = stack.run("migrate", 1, &stack.command_line("migrate"), 120);
    assert_eq!(code, 0, "migrate:\n{out}");
    let css = r.static_dir().join("myproject").join("style.css");
    assert!(css.is_file(), "collectstatic: {out}");

    // Two replicas of the rwsgi service, started at the same moment.
    let mut replicas: Vec<Instance> = (1..=2).map(|n| stack.start("rwsgi", n)).collect();
    let logs = |replicas: &[Instance]| -> String {
        let log = |i: &Instance| format!("--- {} ---\n{}", i.log.display(), i.log());
        replicas.iter().map(log).collect()
    };
    let sockets = [1, 2].map(|n| r.run_dir().join(format!("app-{n}.sock")));
    let up = wait_until(30, || {
        let accepts = |s: &PathBuf| std::os::unix::net::UnixStream::connect(s).is_ok();
        sockets.iter().all(accepts)
    });
    assert!(up, "no replicas on slots 1 and 2:\n{}", logs(&replicas));
    let expected: BTreeSet<String> = (1..=2)
        .map(|n| format!("rwsgi-slot: slot {n} of 3: {}", sockets[n - 1].display()))
        .collect();
    assert_eq!(slot_lines(&replicas), expected, "{}", logs(&replicas));

    // The service's healthcheck, as Docker runs it in each container.
    let rwsgi = stack.service("rwsgi");
    let test = strings(&rwsgi["healthcheck"]["test"]);
    assert_eq!(test[0], "CMD");
    for n in 1..=2 {
        let (code, out) = stack.run("rwsgi", n, &test[1..], 30);
        assert_eq!(code, 0, "healthcheck of replica {n}: {out}");
    }

    // nginx with the file the compose file mounts into its nginx: both
    // replicas serve, and share the database.
    let nginx = SiteNginx::start("upstream.conf", r);
    let mut replica_of = HashMap::new();
    for (n, replica) in replicas.iter().enumerate() {
        for worker in common::children(replica.pid()) {
            replica_of.insert(worker, n);
        }
    }
    let mut served_by = BTreeSet::new();
    for visit in 1..=20 {
        let page = nginx.get("/");
        let text = page.text();
        let context = || format!("{text}\n{}\n{}", nginx.logs(), logs(&replicas));
        assert_eq!(page.status, 200, "{}", context());
        assert!(
            text.contains(&format!("visit {visit}, served by")),
            "{}",
            context()
        );
        served_by.insert(replica_of[&page_pid(&text)]);
    }
    assert_eq!(served_by.len(), 2, "one replica got every request");
    let style = nginx.get("/static/myproject/style.css");
    assert_eq!(style.status, 200);
    assert_eq!(style.text(), std::fs::read_to_string(&css).unwrap());
    assert_eq!(nginx.get("/healthz").text(), "ok\n");

    // A replica keeps its slot through a reload (the re-executed master
    // keeps the lock's fd): a third one takes slot 3, a fourth finds none.
    let before: BTreeSet<u32> = common::children(replicas[0].pid()).into_iter().collect();
    common::signal(replicas[0].pid(), libc_sig::SIGHUP);
    let reloaded = wait_until(30, || {
        let now: BTreeSet<u32> = common::children(replicas[0].pid()).into_iter().collect();
        now.len() == before.len() && now.is_disjoint(&before)
    });
    assert!(reloaded, "{}", logs(&replicas));
    replicas.push(stack.start("rwsgi", 3));
    let third = r.run_dir().join("app-3.sock");
    assert!(wait_until(30, || third.exists()), "{}", logs(&replicas));
    assert!(slot_lines(&replicas[2..])
        .contains(&format!("rwsgi-slot: slot 3 of 3: {}", third.display())));
    let (code, out) = stack.run("rwsgi", 4, &stack.command_line("rwsgi"), 30);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("all 3 slots in"), "{out}");

    // `docker compose stop`: stop_signal, then at most stop_grace_period.
    assert_eq!(rwsgi["stop_signal"], "SIGTERM");
    let grace = compose_seconds(&rwsgi["stop_grace_period"]);
    for replica in &mut replicas {
        let code = replica.stop(libc_sig::SIGTERM, grace);
        assert_eq!(code, Some(0), "{}", replica.log());
    }
    // --vacuum: no stale socket left for nginx to try.
    assert!(sockets.iter().chain([&third]).all(|s| !s.exists()));
    drop(nginx);
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kubernetes_grace_period_outlasts_prestop_and_graceful_stop_and_nginx_stops_first() {
    let objects = kubernetes_objects();
    let pod = &objects["Deployment"]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    let by_name = |name: &str| {
        containers
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} container"))
    };
    let (rwsgi, nginx) = (by_name("rwsgi"), by_name("nginx"));
    let args = strings(&rwsgi["args"]);
    let drain = pre_stop_sleep(rwsgi) + shutdown_timeout(&args);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > drain,
        "grace {grace} s <= preStop + --shutdown-timeout = {drain} s"
    );
    // nginx stops accepting (quit: graceful) before rwsgi starts draining.
    let quit = strings(&nginx["lifecycle"]["preStop"]["exec"]["command"]).join(" ");
    assert!(quit.contains("nginx -s quit"), "{quit}");
    assert!(pre_stop_sleep(nginx) < pre_stop_sleep(rwsgi));
    // Probes on rwsgi's own socket, and on the whole path through nginx.
    let socket = option(&args, "--uwsgi-socket").unwrap();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let command = strings(&rwsgi[probe]["exec"]["command"]);
        assert_eq!(
            command[..2],
            ["rwsgi-healthcheck".to_string(), format!("unix:{socket}")]
        );
    }
    assert_eq!(nginx["readinessProbe"]["httpGet"]["port"], "http");
    // The HPA scales this Deployment, on CPU requests every container has.
    let hpa = &objects["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(
        hpa["scaleTargetRef"]["name"],
        objects["Deployment"]["metadata"]["name"]
    );
    assert!(hpa["minReplicas"].as_u64().unwrap() >= 2);
    for c in containers
        .iter()
        .chain(pod["initContainers"].as_array().unwrap())
    {
        assert!(
            c["resources"]["requests"]["cpu"].is_string(),
            "{}",
            c["name"]
        );
    }
}

#[test]
fn kubernetes_nginx_sidecar_runs_nginx_uwsgi_unix_conf_on_port_8080() {
    let objects = kubernetes_objects();
    let shipped = nginx_file("uwsgi-unix.conf");
    let conf = objects["ConfigMap"]["data"]["default.conf"]
        .as_str()
        .unwrap();
    assert_eq!(
        conf,
        shipped.replace("listen 80;", "listen 8080;"),
        "deploy/kubernetes/nginx-configmap.yaml drifted from nginx/uwsgi-unix.conf"
    );
    let pod = &objects["Deployment"]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    let rwsgi = containers.iter().find(|c| c["name"] == "rwsgi").unwrap();
    let nginx = containers.iter().find(|c| c["name"] == "nginx").unwrap();
    assert_eq!(nginx["ports"][0]["containerPort"], 8080);
    let socket = option(&strings(&rwsgi["args"]), "--uwsgi-socket").unwrap();
    assert!(
        conf.contains(&format!("uwsgi_pass unix:{socket};")),
        "{socket}"
    );
}

#[test]
fn dockerfile_builds_and_runs_on_one_python_as_a_user_with_a_healthcheck() {
    let text = std::fs::read_to_string(deploy_dir().join("docker").join("Dockerfile")).unwrap();
    // Instructions, with continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let first = |word: &'static str| lines.iter().filter(move |l| l.starts_with(word));
    let froms: Vec<&str> = first("FROM ").copied().collect();
    let python_froms: Vec<&str> = froms
        .iter()
        .map(|f| f.split_whitespace().nth(1).unwrap())
        .filter(|image| image.starts_with("python:"))
        .collect();
    // The build stage and the runtime image: the same Python.
    assert_eq!(python_froms.len(), 2, "{froms:?}");
    assert_eq!(python_froms[0], python_froms[1]);
    assert!(python_froms[0].contains("-slim"), "{froms:?}");
    assert!(froms.last().unwrap().starts_with("FROM python:"));
    assert!(lines
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    assert!(lines.iter().any(|l| l.contains("pip install")));
    let user = first("USER ")
        .next_back()
        .expect("a USER")
        .split_whitespace()
        .nth(1)
        .unwrap();
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    assert_eq!(
        first("STOPSIGNAL ").next_back().copied(),
        Some("STOPSIGNAL SIGTERM")
    );
    let health = first("HEALTHCHECK ").next_back().expect("a HEALTHCHECK");
    assert!(health.contains("rwsgi-healthcheck"), "{health}");
    assert!(first("ENTRYPOINT ").any(|l| l.contains("\"rwsgi\"")));
}
