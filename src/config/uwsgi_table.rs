//! The uWSGI options rwsgi knows, and what each means to it ([`Rule`]).
//! The table is data; [`super::uwsgi`] applies it to ini lines.

use super::options::OptionTable;
use super::uwsgi_names::UWSGI_OPTIONS;

/// How one uWSGI option is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule {
    /// rwsgi's option of that name means the same.
    Same(&'static str),
    /// rwsgi's option, with something to know.
    Like(&'static str, &'static str),
    /// rwsgi's option; uWSGI's default (second) differs from rwsgi's.
    Default(&'static str, &'static str, Option<&'static str>),
    /// rwsgi always does what this asks: why.
    NotNeeded(&'static str),
    /// rwsgi does not do this: what to do instead.
    Unsupported(&'static str),
    /// rwsgi does not do this, and running without it is safe (so
    /// `--strict` accepts it): why.
    Harmless(&'static str),
    /// rwsgi cannot start with this line (a listener it cannot open):
    /// what to do instead.
    Fatal(&'static str),
    /// rwsgi's option once it exists; until then "unsupported yet".
    Pending(&'static str, &'static str),
    /// Needs a look at the value.
    Special(Special),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Special {
    /// `socket`: the uwsgi protocol, or the one `protocol` names.
    Socket,
    /// `http`: uWSGI's HTTP router.
    HttpRouter,
    /// `protocol`: what `socket` lines speak.
    Protocol,
    /// `http-keepalive`: on/off or seconds.
    HttpKeepalive,
    /// `hook-master-start = unix_signal:15 gracefully_kill_them_all`.
    Hook,
    /// `logger = file:PATH`.
    Logger,
}

pub(crate) use Rule::*;

/// How uWSGI reads an option's value: the parser its option table names
/// (`core/uwsgi.c`, `uwsgi_opt_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// `uwsgi_opt_true`: on, unless the value is exactly `false`, `off`,
    /// `no` (any case) or `0`.
    Flag,
    /// `uwsgi_opt_false`: off, unless the value is one of those.
    NegatedFlag,
    /// `uwsgi_opt_set_int`, `_64bit`, `_16bit`, `_megabytes`: C's
    /// `atoi`/`strtoul`, which read the leading digits and ignore the rest.
    Number,
    /// The whole value, a `;` or `#` in it included.
    Text,
}

/// How uWSGI reads `key`'s value, when uWSGI has an option `key`.
pub(crate) fn uwsgi_kind(key: &str) -> Option<ValueKind> {
    UWSGI_OPTIONS
        .binary_search_by(|(name, _)| (*name).cmp(key))
        .ok()
        .map(|i| UWSGI_OPTIONS[i].1)
}

const NO_DAEMON: &str =
    "rwsgi stays in the foreground: run it under systemd (deploy/systemd/) or Docker, which keep its logs";
const ONE_APP: &str =
    "rwsgi serves one app at the root; run one rwsgi per app, and let nginx route by path (uwsgi_param SCRIPT_NAME for a prefix)";
const OWN_SERVICE: &str = "run background work as its own service (a systemd unit, Celery, cron)";
const FIXED_WORKERS: &str =
    "rwsgi runs a fixed number of workers, --processes (the cheaper modes are to come)";
const MASTER_SOON: &str = "rwsgi's master does not run this yet (the master FIFO and hooks are to come); until then run it as its own service (a systemd unit, a container)";
const HOOKS_SOON: &str = "rwsgi runs the asap, as-root, as-user, pre-app, post-app, post-fork and master-start hooks (--hook-*, --exec-*), not this phase; run the command from the systemd unit (ExecStartPre=) or the entrypoint";
const NO_GEVENT: &str = "rwsgi runs WSGI apps on Python threads (--threads N), not gevent greenlets; an app that needs gevent's monkey-patching needs a gevent server";
/// For uWSGI options no rule names.
const NOT_IN_RWSGI: &str = "a uWSGI feature rwsgi does not have (rwsgi --help lists what it has)";
const IN_NGINX: &str = "do it in nginx (or the proxy in front)";
const BUILT_IN: &str = "Python and the HTTP, uwsgi and SCGI protocols are built into rwsgi";
const LOGS_SOON: &str = "not in rwsgi's logging yet (it has --logto FILE, --log-format text|json, --log-4xx, --log-5xx, --disable-logging)";
const LOG_FORMAT: &str = "rwsgi's access log has one layout, as text or JSON lines (--log-format text|json); uWSGI's %(var) formats are not supported";
const REOPEN: &str = "send SIGUSR1 to reopen --logto (from logrotate's postrotate)";
const STATIC_OTHER: &str = "rwsgi's static files take --static-map, --static-safe, --static-gzip (-all, -dir, -ext) and --static-expires (-uri, -type), not this (no index files, no -mtime or -path-info forms; a missing file is a 404, not the app); for more, serve static files from nginx (location /static/ { alias ...; })";
const STATS_SOON: &str =
    "not in rwsgi's stats yet (--stats ADDR serves uWSGI-style stats JSON, --metrics ADDR Prometheus metrics)";
const NO_TLS: &str = "rwsgi speaks plain HTTP and uwsgi: terminate TLS in nginx or the load balancer, and listen with http-socket or socket";
const SANDBOX: &str = "use systemd's sandboxing (see deploy/systemd/) or the container runtime";

/// Exact option names. `Special`s and families (prefixes) are in [`rule`].
pub(crate) const RULES: &[(&str, Rule)] = &[
    // The app.
    ("module", Same("module")),
    ("wsgi", Same("module")),
    ("wsgi-file", Same("wsgi-file")),
    ("file", Same("wsgi-file")),
    ("callable", Same("callable")),
    ("chdir", Same("chdir")),
    ("chdir2", Like("chdir", "uWSGI changes directory after loading the app, rwsgi before (and the directory is importable)")),
    ("home", Same("home")),
    ("virtualenv", Same("home")),
    ("venv", Same("home")),
    ("pyhome", Same("home")),
    ("pythonpath", Same("pythonpath")),
    ("python-path", Same("pythonpath")),
    ("pp", Same("pythonpath")),
    ("env", Same("env")),
    ("vhost", Unsupported(ONE_APP)),
    ("no-default-app", NotNeeded("rwsgi serves exactly the one app it is given")),
    ("need-app", NotNeeded("rwsgi always refuses to start when the app cannot be imported")),
    ("shared-import", Unsupported("import the module from your WSGI module instead")),
    ("pyargv", Unsupported("sys.argv is ['rwsgi']; pass settings to the app with env = KEY=VALUE")),
    ("optimize", Unsupported("set env = PYTHONOPTIMIZE=1 instead")),
    ("py-autoreload", Harmless("rwsgi does not watch source files; reload with --touch-reload FILE (touch it on deploy) or SIGHUP")),
    ("python-autoreload", Harmless("rwsgi does not watch source files; reload with --touch-reload FILE (touch it on deploy) or SIGHUP")),
    ("gevent", Unsupported(NO_GEVENT)),
    ("gevent-early-monkey-patch", Unsupported(NO_GEVENT)),
    ("gevent-monkey-patch", Unsupported(NO_GEVENT)),
    ("gevent-wait-for-hub", Unsupported(NO_GEVENT)),
    ("py-call-osafterfork", NotNeeded("CPython's fork hooks (os.register_at_fork) always run in rwsgi workers")),
    ("catch-exceptions", Harmless("rwsgi never sends tracebacks to clients; they are in its log")),
    ("wsgi-disable-file-wrapper", Harmless("rwsgi always offers wsgi.file_wrapper")),
    ("single-interpreter", NotNeeded("each rwsgi worker runs exactly one interpreter")),
    ("enable-threads", NotNeeded("Python threads are always enabled in rwsgi")),
    ("threads", Same("threads")),
    ("offload-threads", NotNeeded("rwsgi writes responses from its async I/O side, never from a Python thread")),
    ("lazy-apps", Same("lazy-apps")),
    ("lazy", Like("lazy-apps", "uWSGI's `lazy` also changes how reloads work; rwsgi's reload is always graceful")),
    // Sockets.
    ("socket", Special(Special::Socket)),
    ("uwsgi-socket", Special(Special::Socket)),
    ("http", Special(Special::HttpRouter)),
    ("http-socket", Same("http-socket")),
    ("http11-socket", Like("http-socket", "rwsgi's HTTP sockets always speak HTTP/1.1 with keep-alive, as uWSGI's http11-socket does")),
    ("https", Fatal(NO_TLS)),
    ("https2", Fatal(NO_TLS)),
    ("https-socket", Fatal(NO_TLS)),
    ("http-to-https", Fatal(NO_TLS)),
    ("suwsgi-socket", Fatal(NO_TLS)),
    ("ssl-socket", Fatal(NO_TLS)),
    ("fastcgi-socket", Fatal("rwsgi does not speak FastCGI: listen with socket (nginx uwsgi_pass) or scgi-socket (scgi_pass)")),
    ("fastcgi-nph-socket", Fatal("rwsgi does not speak FastCGI: listen with socket (nginx uwsgi_pass) or scgi-socket (scgi_pass)")),
    ("raw-socket", Fatal("rwsgi has no raw socket mode: listen with http-socket, socket or scgi-socket")),
    ("puwsgi-socket", Fatal("rwsgi's uwsgi sockets serve one request per connection: listen with socket")),
    ("shared-socket", Fatal("give the socket with socket/http-socket; rwsgi's master binds it and the workers share it")),
    ("undeferred-shared-socket", Fatal("give the socket with socket/http-socket; rwsgi's master binds it and the workers share it")),
    ("zerg", Fatal("rwsgi has no zerg mode: give this instance its own socket with socket/http-socket")),
    ("scgi-socket", Same("scgi-socket")),
    ("protocol", Special(Special::Protocol)),
    ("chmod-socket", Same("chmod-socket")),
    ("chown-socket", Same("chown-socket")),
    ("umask", Same("umask")),
    ("listen", Default("listen", "100", None)),
    ("no-defer-accept", Same("no-defer-accept")),
    ("so-keepalive", Harmless("not configurable in rwsgi")),
    ("abstract-socket", Unsupported("abstract-namespace sockets are not supported; use a path")),
    // HTTP.
    ("http-keepalive", Special(Special::HttpKeepalive)),
    ("http-timeout", NotNeeded("it is the timeout of uWSGI's HTTP router towards its workers; rwsgi has no router process (a request may run up to --harakiri)")),
    ("http-auto-chunked", NotNeeded("rwsgi uses chunked encoding by itself when the app gives no Content-Length")),
    ("http-chunked-input", NotNeeded("rwsgi decodes chunked request bodies by itself")),
    ("http-processes", NotNeeded("rwsgi has no HTTP router process; the workers speak HTTP")),
    ("http-workers", NotNeeded("rwsgi has no HTTP router process; the workers speak HTTP")),
    ("http-auto-gzip", Harmless("compress in nginx (gzip on)")),
    ("http-enable-proxy-protocol", Unsupported("the PROXY protocol is not supported; let nginx pass the client address")),
    ("enable-proxy-protocol", Unsupported("the PROXY protocol is not supported; let nginx pass the client address")),
    ("http-websockets", Unsupported("WSGI has no websockets; serve them from an ASGI server")),
    ("buffer-size", Default("buffer-size", "4096", Some("rwsgi's limit on the uwsgi vars block / SCGI header, as in uWSGI"))),
    ("post-buffering", Default("post-buffering", "0 (off)", Some("bodies up to this size are read before the app runs; larger ones stream into wsgi.input (uWSGI spools them to a temp file)"))),
    ("limit-post", Same("limit-post")),
    ("socket-timeout", Default("write-timeout", "4", Some("the time a client may leave a response unread; rwsgi also has --header-timeout 10 and --body-timeout 60 for reading"))),
    // Processes.
    ("master", NotNeeded("the rwsgi master process always runs")),
    ("processes", Same("processes")),
    ("workers", Same("processes")),
    ("cheap", Pending("", FIXED_WORKERS)),
    ("cheaper", Pending("", FIXED_WORKERS)),
    ("idle", Pending("", FIXED_WORKERS)),
    ("die-on-idle", Pending("", FIXED_WORKERS)),
    ("die-on-term", NotNeeded("rwsgi always stops on SIGTERM, gracefully (requests in flight finish, up to --shutdown-timeout); uWSGI 2.0 does a brutal reload on SIGTERM without die-on-term, and with it kills the workers at once, as rwsgi does on SIGINT")),
    ("thunder-lock", NotNeeded("rwsgi has no accept lock to serialize; each worker accepts on the shared socket from its event loop")),
    ("no-orphans", NotNeeded("rwsgi workers exit when their master dies")),
    ("vacuum", Same("vacuum")),
    ("pidfile", Same("pidfile")),
    ("pidfile2", Like("pidfile", "uWSGI writes pidfile2 after dropping privileges; rwsgi writes the pidfile before")),
    ("safe-pidfile", Same("pidfile")),
    ("safe-pidfile2", Like("pidfile", "uWSGI writes pidfile2 after dropping privileges; rwsgi writes the pidfile before")),
    ("uid", Same("uid")),
    ("gid", Same("gid")),
    ("master-as-root", Unsupported("rwsgi's master drops privileges right after binding the sockets; the workers inherit them")),
    ("daemonize", Unsupported(NO_DAEMON)),
    ("daemonize2", Unsupported(NO_DAEMON)),
    ("binary-path", NotNeeded("rwsgi re-executes its own binary on reload")),
    ("procname", Same("procname")),
    ("procname-prefix", Same("procname-prefix")),
    ("procname-prefix-spaced", Same("procname-prefix-spaced")),
    ("procname-append", Same("procname-append")),
    ("procname-master", Same("procname-master")),
    ("auto-procname", NotNeeded("rwsgi names its processes `rwsgi master` and `rwsgi worker N`")),
    ("cpu-affinity", Harmless("set CPUAffinity= in the systemd unit (or use taskset)")),
    ("max-fd", Same("max-fd")),
    ("chroot", Unsupported(SANDBOX)),
    ("jail", Unsupported(SANDBOX)),
    ("unshare", Unsupported(SANDBOX)),
    ("cap", Unsupported(SANDBOX)),
    ("plugins", NotNeeded(BUILT_IN)),
    ("plugin", NotNeeded(BUILT_IN)),
    ("need-plugin", NotNeeded(BUILT_IN)),
    ("need-plugins", NotNeeded(BUILT_IN)),
    ("plugin-dir", NotNeeded(BUILT_IN)),
    ("plugins-dir", NotNeeded(BUILT_IN)),
    ("autoload", NotNeeded(BUILT_IN)),
    ("strict", Same("strict")),
    ("show-config", NotNeeded("use rwsgi --check-config to see how each line is taken")),
    ("honour-stdin", Harmless("rwsgi's stdin is /dev/null for the app")),
    ("memory-report", Pending("memory-report", STATS_SOON)),
    ("ignore-sigpipe", NotNeeded("a client that goes away ends the response on rwsgi's I/O side; the app never sees the write error")),
    ("ignore-write-errors", NotNeeded("a client that goes away ends the response on rwsgi's I/O side; the app never sees the write error")),
    ("disable-write-exception", NotNeeded("a client that goes away ends the response on rwsgi's I/O side; the app never sees the write error")),
    // Recycling and reloading.
    ("harakiri", Same("harakiri")),
    ("harakiri-verbose", NotNeeded("rwsgi logs every harakiri")),
    ("max-requests", Same("max-requests")),
    ("max-requests-delta", Like("max-requests-jitter", "rwsgi adds a random 0..=N to each worker's max-requests instead of N × the worker id")),
    ("max-worker-lifetime", Same("max-worker-lifetime")),
    ("reload-on-rss", Same("reload-on-rss")),
    ("evil-reload-on-rss", Unsupported("rwsgi checks RSS between requests (--reload-on-rss); to cap a stuck worker use --harakiri or a memory limit (MemoryMax= in systemd)")),
    ("reload-on-as", Like("reload-on-rss", "rwsgi measures resident memory, which is always below the address space uWSGI measures here: a worker is recycled later than uWSGI would")),
    ("evil-reload-on-as", Unsupported("use --reload-on-rss (resident memory, in MB)")),
    ("reload-mercy", Default("shutdown-timeout", "60", Some("how long a stop or reload waits for requests in flight"))),
    ("worker-reload-mercy", Default("shutdown-timeout", "60", Some("how long a stop or reload waits for requests in flight"))),
    ("mule-reload-mercy", Harmless(OWN_SERVICE)),
    ("touch-reload", Same("touch-reload")),
    ("touch-chain-reload", Like("touch-reload", "rwsgi's reload always replaces workers one by one")),
    ("touch-workers-reload", Like("touch-reload", "rwsgi reloads the master too (a re-exec that keeps the sockets)")),
    ("fs-reload", Unsupported("use --touch-reload FILE")),
    ("fs-brutal-reload", Unsupported("use --touch-reload FILE")),
    ("master-fifo", Pending("", MASTER_SOON)),
    ("master-fifo-unused", Unsupported("send signals instead: SIGHUP reloads, SIGTERM stops gracefully, SIGINT fast")),
    // Logging.
    ("disable-logging", Same("disable-logging")),
    ("log-4xx", Pending("log-4xx", LOGS_SOON)),
    ("log-5xx", Pending("log-5xx", LOGS_SOON)),
    ("logto", Pending("logto", LOGS_SOON)),
    ("logto2", Pending("logto", LOGS_SOON)),
    ("logger", Special(Special::Logger)),
    ("req-logger", Special(Special::Logger)),
    ("log-format", Pending("", LOG_FORMAT)),
    ("logformat", Pending("", LOG_FORMAT)),
    ("logformat-strftime", Pending("", LOG_FORMAT)),
    ("log-format-strftime", Pending("", LOG_FORMAT)),
    ("logger-req", Pending("", LOGS_SOON)),
    ("ksm", Harmless("Linux same-page merging is not supported; the workers share the app's pages through fork (without --lazy-apps)")),
    ("close-on-exec", NotNeeded("rwsgi opens every socket close-on-exec: processes the app starts inherit none")),
    ("close-on-exec2", NotNeeded("rwsgi opens every socket close-on-exec: processes the app starts inherit none")),
    ("log-x-forwarded-for", Pending("log-x-forwarded-for", LOGS_SOON)),
    ("log-reopen", NotNeeded("a reload re-executes rwsgi, which opens --logto anew; SIGUSR1 reopens it too")),
    ("touch-logreopen", Unsupported(REOPEN)),
    ("touch-logrotate", Unsupported(REOPEN)),
    ("logfile-chown", Harmless("create the log file with its owner and mode beforehand (or use systemd's LogsDirectory=)")),
    ("logfile-chmod", Harmless("create the log file with its owner and mode beforehand (or use systemd's LogsDirectory=)")),
    ("log-slow", Pending("log-slow", LOGS_SOON)),
    ("log-date", NotNeeded("rwsgi's log lines always carry a timestamp")),
    ("logdate", NotNeeded("rwsgi's log lines always carry a timestamp")),
    ("log-micros", NotNeeded("rwsgi's log lines always carry a timestamp")),
    ("log-master", NotNeeded("rwsgi's workers write to the same stderr as the master")),
    ("log-maxsize", Unsupported("rotate with journald or logrotate (copytruncate)")),
    ("log-backupname", Unsupported("rotate with journald or logrotate (copytruncate)")),
    // Stats and metrics.
    ("stats", Pending("stats", STATS_SOON)),
    ("stats-server", Pending("stats", STATS_SOON)),
    ("stats-http", Pending("stats-http", STATS_SOON)),
    ("stats-minified", Pending("stats-minified", STATS_SOON)),
    ("enable-metrics", NotNeeded("rwsgi always keeps its metrics; serve them with --metrics ADDR (Prometheus)")),
    ("carbon", Harmless("scrape rwsgi's Prometheus metrics (--metrics ADDR) instead")),
    // Static files.
    ("static-map", Pending("static-map", STATIC_OTHER)),
    ("static-safe", Pending("static-safe", STATIC_OTHER)),
    ("static-map2", Unsupported(STATIC_OTHER)),
    ("check-static", Unsupported(STATIC_OTHER)),
    ("static-index", Unsupported(STATIC_OTHER)),
    ("static-skip-ext", Unsupported(STATIC_OTHER)),
    // Everything else uWSGI does.
    ("cache", Unsupported("use Redis, Memcached or your framework's cache")),
    ("cache2", Unsupported("use Redis, Memcached or your framework's cache")),
    ("emperor", Unsupported("run one rwsgi per app under systemd (a templated unit)")),
    ("vassals-inherit", Unsupported("run one rwsgi per app under systemd (a templated unit)")),
    ("unenv", Unsupported("remove the variable from the service's environment")),
    ("print", NotNeeded("--check-config shows every line as rwsgi reads it")),
];

/// The uWSGI options that open a listener, so a file whose listener lines
/// were all refused can say which ones.
pub(crate) const LISTENER_OPTIONS: &[&str] = &[
    "socket",
    "uwsgi-socket",
    "http-socket",
    "http11-socket",
    "scgi-socket",
    "http",
    "https",
    "https2",
    "https-socket",
    "http-to-https",
    "suwsgi-socket",
    "ssl-socket",
    "fastcgi-socket",
    "fastcgi-nph-socket",
    "raw-socket",
    "puwsgi-socket",
    "shared-socket",
    "undeferred-shared-socket",
    "zerg",
];

/// Families of options, by prefix.
const FAMILIES: &[(&str, Rule)] = &[
    ("cheaper", Pending("", FIXED_WORKERS)),
    ("mule", Unsupported(OWN_SERVICE)),
    ("farm", Unsupported(OWN_SERVICE)),
    ("spooler", Unsupported(OWN_SERVICE)),
    ("legion", Unsupported(OWN_SERVICE)),
    (
        "emperor-",
        Unsupported("run one rwsgi per app under systemd (a templated unit)"),
    ),
    ("route", Unsupported(IN_NGINX)),
    ("response-route", Unsupported(IN_NGINX)),
    ("final-route", Unsupported(IN_NGINX)),
    ("error-route", Unsupported(IN_NGINX)),
    ("hook-", Pending("", HOOKS_SOON)),
    ("exec-", Pending("", HOOKS_SOON)),
    ("call-", Pending("", HOOKS_SOON)),
    (
        "cache-",
        Unsupported("use Redis, Memcached or your framework's cache"),
    ),
    ("static-", Unsupported(STATIC_OTHER)),
    ("stats-", Pending("", STATS_SOON)),
    ("metric", Pending("", STATS_SOON)),
    ("log-", Pending("", LOGS_SOON)),
];

/// The rule for `key` (lower case, `-` separated), if uWSGI has one.
pub(crate) fn rule(key: &str) -> Option<Rule> {
    explicit_rule(key).or_else(|| family_rule(key))
}

/// The rule written for `key` itself (not one of a family's).
pub(crate) fn explicit_rule(key: &str) -> Option<Rule> {
    if key.starts_with("hook-master-start") || key.starts_with("hook-as-root") {
        // Only this hook has a meaning rwsgi has; see `Special::Hook`.
        return Some(Special(Special::Hook));
    }
    RULES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, rule)| *rule)
}

/// The rule of the family `key` belongs to, or "not in rwsgi" for another
/// uWSGI name; `None` for a name uWSGI does not have.
fn family_rule(key: &str) -> Option<Rule> {
    // Only names uWSGI has: `exec-pre` or `log-buffering` are not options.
    uwsgi_kind(key)?;
    let family = FAMILIES.iter().find(|(prefix, _)| key.starts_with(prefix));
    Some(family.map_or(Unsupported(NOT_IN_RWSGI), |(_, rule)| *rule))
}

/// uWSGI defaults that differ from rwsgi's, for options a file leaves out:
/// (uWSGI option, what uWSGI does, what rwsgi does).
pub(crate) fn default_differences(table: &OptionTable) -> Vec<(&'static str, String, String)> {
    let rwsgi = |long: &str| {
        table
            .lookup(long)
            .and_then(|s| s.default.clone())
            .unwrap_or_else(|| "none".into())
    };
    vec![
        (
            "listen",
            "100".into(),
            format!("--listen {}", rwsgi("listen")),
        ),
        (
            "buffer-size",
            "4096".into(),
            format!("--buffer-size {}", rwsgi("buffer-size")),
        ),
        (
            "post-buffering",
            "0 (off)".into(),
            format!("--post-buffering {}", rwsgi("post-buffering")),
        ),
        (
            "socket-timeout",
            "4 s".into(),
            format!("--write-timeout {} s", rwsgi("write-timeout")),
        ),
        (
            "reload-mercy",
            "60 s".into(),
            format!("--shutdown-timeout {} s", rwsgi("shutdown-timeout")),
        ),
        ("master", "off".into(), "always on".into()),
        (
            "enable-threads",
            "off (threads the app starts do not run)".into(),
            "always on".into(),
        ),
        (
            "die-on-term",
            "off (SIGTERM does a brutal reload)".into(),
            "SIGTERM always stops gracefully".into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_option_exists_in_rwsgi() {
        let table = OptionTable::new();
        for (name, rule) in RULES {
            if let Same(long) | Like(long, _) | Default(long, _, _) = rule {
                assert!(
                    table.lookup(long).is_some(),
                    "{name} maps onto missing --{long}"
                );
            }
        }
    }

    #[test]
    fn families() {
        assert!(matches!(rule("cheaper-algo"), Some(Pending(..))));
        assert!(matches!(rule("fastrouter-events"), Some(Unsupported(_))));
        assert!(rule("exec-pre").is_none());
        assert!(rule("log-buffering").is_none());
        assert!(matches!(rule("route-uri"), Some(Unsupported(_))));
        assert!(matches!(
            rule("hook-master-start"),
            Some(Special(Special::Hook))
        ));
        assert!(matches!(rule("socket"), Some(Special(Special::Socket))));
        assert!(rule("frobnicate").is_none());
    }
}
