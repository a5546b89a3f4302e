//! The command line. Option names follow uWSGI's where uWSGI has one.

use std::path::PathBuf;

use super::cron::CronSpec;
use super::daemon::DaemonSpec;
use super::hooks::{Hook, HookPhase};
use clap::Parser;

use crate::protocol::{Limits, Protocol};
use crate::server::listener::{ListenAddr, ListenSpec};
use crate::server::{parse_safe_path, static_extras, StaticFiles, StaticMap, StaticOptions};
use crate::wsgi::AppSpec;

/// An octal file-mode mask (`022`, `0027`).
fn parse_umask(s: &str) -> Result<String, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mask) if mask <= 0o777 => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not an octal umask like 022")),
    }
}

/// rwsgi: a fast, safe application server for Python WSGI apps.
///
/// With no app given it serves a built-in demo app; with no socket given it
/// listens for HTTP on 127.0.0.1:8000.
#[derive(Debug, Parser)]
#[command(name = "rwsgi", version, about, long_about = None)]
pub struct Cli {
    /// Serve HTTP/1.1 on ADDR (host:port, :port, [::1]:port or a Unix socket
    /// path). Repeatable.
    #[arg(long = "http-socket", value_name = "ADDR")]
    pub http_socket: Vec<ListenAddr>,

    /// Serve the uwsgi protocol (nginx `uwsgi_pass`) on ADDR. Repeatable.
    #[arg(
        long = "uwsgi-socket",
        visible_alias = "socket",
        short = 's',
        value_name = "ADDR"
    )]
    pub uwsgi_socket: Vec<ListenAddr>,

    /// Serve SCGI (nginx `scgi_pass`) on ADDR. Repeatable.
    #[arg(long = "scgi-socket", value_name = "ADDR")]
    pub scgi_socket: Vec<ListenAddr>,

    /// The WSGI app as `package.module:callable` (or `package.module`, with
    /// --callable). `module:factory()` calls a factory to get the app.
    #[arg(
        long,
        short = 'w',
        visible_alias = "wsgi",
        value_name = "MODULE[:CALLABLE]"
    )]
    pub module: Option<String>,

    /// Load the WSGI app from a Python file.
    #[arg(
        long = "wsgi-file",
        visible_alias = "file",
        value_name = "PATH",
        conflicts_with = "module"
    )]
    pub wsgi_file: Option<PathBuf>,

    /// The name of the WSGI callable [default: application, then app].
    #[arg(long, value_name = "NAME")]
    pub callable: Option<String>,

    /// Change to DIR before loading the app (and add it to sys.path).
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Add DIR to sys.path. Repeatable.
    #[arg(long, visible_alias = "pp", value_name = "DIR")]
    pub pythonpath: Vec<PathBuf>,

    /// A virtualenv whose site-packages the app imports from.
    #[arg(
        long,
        short = 'H',
        visible_alias = "virtualenv",
        visible_alias = "venv",
        value_name = "DIR"
    )]
    pub home: Option<PathBuf>,

    /// Python threads that run requests.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,

    /// Requests that may wait for a free Python thread before new ones get a
    /// 503 [default: 64 per thread, at least 1024].
    #[arg(long = "queue-size", value_name = "N")]
    pub queue_size: Option<usize>,

    /// Seconds in the Retry-After header of an overload 503.
    #[arg(long = "retry-after", default_value_t = 1, value_name = "SECONDS")]
    pub retry_after: u64,

    /// Listen backlog of every socket.
    #[arg(long = "listen", short = 'l', default_value_t = 1024, value_name = "N")]
    pub listen: i32,

    /// Accept TCP connections as soon as the handshake completes, instead
    /// of when their first bytes arrive (TCP_DEFER_ACCEPT, on by default
    /// as in uWSGI: a worker is not woken for a connection it cannot yet
    /// read, and a client that connects and sends nothing costs no worker
    /// a socket until the kernel hands it over after about a second).
    #[arg(long = "no-defer-accept")]
    pub no_defer_accept: bool,

    /// Largest uwsgi vars block / SCGI netstring, in bytes (uWSGI's
    /// buffer-size; here it defaults to the protocol maximum).
    #[arg(
        long = "buffer-size",
        short = 'b',
        default_value_t = 65535,
        value_name = "BYTES"
    )]
    pub buffer_size: usize,

    /// Longest HTTP request line in bytes (414 past it; gunicorn's name).
    #[arg(
        long = "limit-request-line",
        default_value_t = 8190,
        value_name = "BYTES"
    )]
    pub limit_request_line: usize,

    /// Most HTTP header fields in one request (431 past it).
    #[arg(long = "limit-request-fields", default_value_t = 100, value_name = "N")]
    pub limit_request_fields: usize,

    /// Longest HTTP header field line in bytes, name and value (431 past it).
    #[arg(
        long = "limit-request-field-size",
        default_value_t = 8190,
        value_name = "BYTES"
    )]
    pub limit_request_field_size: usize,

    /// Largest whole HTTP request head in bytes (431 past it).
    #[arg(
        long = "limit-request-head",
        default_value_t = 65536,
        value_name = "BYTES"
    )]
    pub limit_request_head: usize,

    /// Largest request body in bytes, 0 for no limit (413 past it).
    #[arg(long = "limit-post", default_value_t = 0, value_name = "BYTES")]
    pub limit_post: u64,

    /// Bodies up to this size are read into memory before the app runs;
    /// larger ones are written to a temporary file (in $TMPDIR) before the
    /// app runs, so a slow upload never holds a Python thread. 0: bodies
    /// stream into wsgi.input as they arrive (uWSGI without post-buffering).
    #[arg(long = "post-buffering", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub post_buffering: usize,

    /// Most bytes of request bodies one worker holds in memory at once,
    /// over all its connections; a body that would go past it is written
    /// to a temporary file instead.
    #[arg(long = "body-memory", default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub body_memory: usize,

    /// Seconds a client has to send a whole request head (slow clients and
    /// slowloris get a 408 and a closed connection).
    #[arg(long = "header-timeout", default_value_t = 10, value_name = "SECONDS")]
    pub header_timeout: u64,

    /// Seconds a request body may stall between two reads.
    #[arg(long = "body-timeout", default_value_t = 60, value_name = "SECONDS")]
    pub body_timeout: u64,

    /// Seconds an idle keep-alive connection stays open between requests.
    #[arg(
        long = "keepalive-timeout",
        visible_alias = "http-keepalive",
        default_value_t = 5,
        value_name = "SECONDS"
    )]
    pub keepalive_timeout: u64,

    /// Seconds a client may leave the response unread before the connection
    /// is dropped (uWSGI's socket-timeout).
    #[arg(
        long = "write-timeout",
        visible_alias = "socket-timeout",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub write_timeout: u64,

    /// Most open connections per worker; past it the worker stops
    /// accepting until one closes (the rest wait in the listen backlog).
    #[arg(long = "max-connections", default_value_t = 10000, value_name = "N")]
    pub max_connections: usize,

    /// Serve uWSGI-style stats JSON (for uwsgitop and the uWSGI exporters)
    /// on ADDR (host:port or a Unix socket path).
    #[arg(long, value_name = "ADDR")]
    pub stats: Option<ListenAddr>,

    /// Answer on the --stats socket over HTTP.
    #[arg(long = "stats-http")]
    pub stats_http: bool,

    /// Serve Prometheus metrics over HTTP on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<ListenAddr>,

    /// Log format: `text` (uWSGI-like lines) or `json` (one object per
    /// line, access-log fields at the top level).
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Write the log to FILE instead of stderr (reopened on SIGUSR1, for
    /// logrotate).
    #[arg(long, value_name = "FILE")]
    pub logto: Option<PathBuf>,

    /// With --disable-logging, still log requests answered 4xx.
    #[arg(long = "log-4xx")]
    pub log_4xx: bool,

    /// With --disable-logging, still log requests answered 5xx.
    #[arg(long = "log-5xx")]
    pub log_5xx: bool,

    /// Serve the files under DIR for URL paths under /PREFIX, without the
    /// app (GET and HEAD; ETag, Range, 304; a missing file is a 404).
    /// Relative DIRs are taken from the directory rwsgi starts in.
    /// Repeatable; the longest prefix wins.
    #[arg(long = "static-map", value_name = "/PREFIX=DIR")]
    pub static_map: Vec<StaticMap>,

    /// Let --static-map follow symlinks that lead under PATH, outside the
    /// mapped directory (refused with 403 otherwise). Repeatable.
    #[arg(long = "static-safe", value_name = "PATH", value_parser = parse_safe_path)]
    pub static_safe: Vec<PathBuf>,

    /// For static files whose path matches REGEXP, send FILE.br or
    /// FILE.gz (with Content-Encoding) to clients that accept it, when that
    /// pre-compressed sibling exists (uWSGI's static-gzip). Repeatable.
    #[arg(long = "static-gzip", value_name = "REGEXP", value_parser = static_extras::parse_regex)]
    pub static_gzip: Vec<regex::bytes::Regex>,

    /// --static-gzip for every static file.
    #[arg(long = "static-gzip-all")]
    pub static_gzip_all: bool,

    /// --static-gzip for files whose path starts with PREFIX. Repeatable.
    #[arg(
        long = "static-gzip-dir",
        visible_alias = "static-gzip-prefix",
        value_name = "PREFIX"
    )]
    pub static_gzip_dir: Vec<String>,

    /// --static-gzip for files whose path ends with SUFFIX (`.css`).
    /// Repeatable.
    #[arg(
        long = "static-gzip-ext",
        visible_alias = "static-gzip-suffix",
        value_name = "SUFFIX"
    )]
    pub static_gzip_ext: Vec<String>,

    /// An Expires header SECONDS from now on static files whose path
    /// matches REGEXP (uWSGI's static-expires). Repeatable; the first
    /// match wins.
    #[arg(long = "static-expires", value_name = "REGEXP SECONDS",
          value_parser = static_extras::parse_expires_regex)]
    pub static_expires: Vec<static_extras::ExpiresRule<regex::bytes::Regex>>,

    /// Like --static-expires, on the request URI.
    #[arg(long = "static-expires-uri", value_name = "REGEXP SECONDS",
          value_parser = static_extras::parse_expires_regex)]
    pub static_expires_uri: Vec<static_extras::ExpiresRule<regex::bytes::Regex>>,

    /// Like --static-expires, on the file's Content-Type.
    #[arg(long = "static-expires-type", value_name = "MIME SECONDS",
          value_parser = static_extras::parse_expires_type)]
    pub static_expires_type: Vec<static_extras::ExpiresRule<String>>,

    /// Start each access-log line with the worker's address space and
    /// resident memory (uWSGI's memory-report).
    #[arg(long = "memory-report")]
    pub memory_report: bool,

    /// Turn off the per-request access log.
    #[arg(long = "disable-logging", short = 'L')]
    pub disable_logging: bool,

    /// Worker processes, each with --threads Python threads.
    #[arg(long, short = 'p', visible_alias = "workers", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub processes: u32,

    /// Import the app in each worker after it starts, instead of once in the
    /// master before forking (see docs/configuration.md, "Loading the app").
    #[arg(long = "lazy-apps")]
    pub lazy_apps: bool,

    /// Seconds a graceful stop or reload waits for in-flight requests.
    #[arg(
        long = "shutdown-timeout",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub shutdown_timeout: u64,

    /// Answer 504 to a request running longer than SECONDS and replace its
    /// worker (0: off).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub harakiri: u64,

    /// Recycle a worker (gracefully) after it served N requests (0: never).
    #[arg(
        long = "max-requests",
        short = 'R',
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_requests: u64,

    /// Add a random 0..=N to each worker's max-requests, so workers do not
    /// all recycle at once.
    #[arg(long = "max-requests-jitter", default_value_t = 0, value_name = "N")]
    pub max_requests_jitter: u64,

    /// Recycle a worker after it lived SECONDS (0: never).
    #[arg(
        long = "max-worker-lifetime",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    pub max_worker_lifetime: u64,

    /// Recycle a worker whose resident memory exceeds MB (0: never).
    #[arg(long = "reload-on-rss", default_value_t = 0, value_name = "MB")]
    pub reload_on_rss: u64,

    /// Reload gracefully when FILE's modification time changes. Repeatable.
    #[arg(long = "touch-reload", value_name = "FILE")]
    pub touch_reload: Vec<PathBuf>,

    /// Start CMD (through /bin/sh -c) beside the workers, restart it when
    /// it exits, stop it (SIGTERM to its process group) with the server
    /// and on reloads: a Celery worker, a queue consumer (uWSGI's
    /// attach-daemon). Repeatable.
    #[arg(long = "attach-daemon", value_name = "CMD", value_parser = DaemonSpec::plain)]
    pub attach_daemon: Vec<DaemonSpec>,

    /// Like --attach-daemon, but the server stops when CMD exits.
    #[arg(long = "attach-control-daemon", value_name = "CMD", value_parser = DaemonSpec::control)]
    pub attach_control_daemon: Vec<DaemonSpec>,

    /// A daemon that daemonizes itself and writes PIDFILE: started if the
    /// pidfile names no live process, restarted when it is gone (checked
    /// each second; FREQ checks of grace after a start), left running
    /// across reloads. Repeatable.
    #[arg(long = "smart-attach-daemon", value_name = "PIDFILE[,FREQ] CMD",
          value_parser = DaemonSpec::smart)]
    pub smart_attach_daemon: Vec<DaemonSpec>,

    /// Like --smart-attach-daemon for a CMD that stays in the foreground:
    /// rwsgi daemonizes it and writes PIDFILE. Repeatable.
    #[arg(long = "smart-attach-daemon2", value_name = "PIDFILE[,FREQ] CMD",
          value_parser = DaemonSpec::smart_daemonized)]
    pub smart_attach_daemon2: Vec<DaemonSpec>,

    /// An attached daemon in uWSGI's key=value form (cmd=, pidfile=,
    /// daemonize=1, control=1, stopsignal=N, reloadsignal=N, stdin=1,
    /// uid=N, gid=N, chdir=DIR, max_throttle=S, notifypid=1). Repeatable.
    #[arg(long = "attach-daemon2", value_name = "KEY=VALUE,...", value_parser = DaemonSpec::keyval)]
    pub attach_daemon2: Vec<DaemonSpec>,

    /// Import the Python module MODULE (or run the file, with a `/` or
    /// `.py`) before the app is loaded, wherever the app is loaded (the
    /// master, or each worker with --lazy-apps). A failing import is
    /// logged with its traceback, and the app still loads, as in uWSGI.
    /// Repeatable.
    #[arg(long = "import", visible_aliases = ["pyimport", "py-import", "python-import"],
          value_name = "MODULE")]
    pub import: Vec<String>,

    /// Add the header "NAME: VALUE" to every response the app or a static
    /// map sends (uWSGI's add-header). Repeatable.
    #[arg(long = "add-header", value_name = "NAME: VALUE", value_parser = parse_added_header)]
    pub add_header: Vec<String>,

    /// Serve another app at /PREFIX (uWSGI's mount): TARGET is a file
    /// (`.py`, `.wsgi`) or `module[:callable]`. Without
    /// --manage-script-name the app is chosen by the SCRIPT_NAME the proxy
    /// sends; paths no mount takes go to the --module / --wsgi-file app,
    /// else get a 404. Repeatable.
    #[arg(long = "mount", value_name = "/PREFIX=TARGET", value_parser = parse_mount)]
    pub mount: Vec<Mount>,

    /// Choose --mount apps by the longest mountpoint that prefixes
    /// PATH_INFO, which moves from PATH_INFO to SCRIPT_NAME.
    #[arg(long = "manage-script-name")]
    pub manage_script_name: bool,

    /// Run CMD when the local time matches (uWSGI's cron): "MINUTE HOUR
    /// DAY MONTH WEEKDAY CMD", -1 for any, -N for every N. The master
    /// checks each second; an entry runs at most once a minute.
    /// Repeatable.
    #[arg(long = "cron", value_name = "M H D MON W CMD", value_parser = CronSpec::classic,
          allow_hyphen_values = true)]
    pub cron: Vec<CronSpec>,

    /// Like --cron, never two runs of the entry at once.
    #[arg(long = "unique-cron", value_name = "M H D MON W CMD", value_parser = CronSpec::unique,
          allow_hyphen_values = true)]
    pub unique_cron: Vec<CronSpec>,

    /// A cron entry in uWSGI's key form: "minute=..,hour=..,day=..,
    /// month=..,week=..,unique=1,harakiri=S CMD" (fields default to any).
    /// Repeatable.
    #[arg(long = "cron2", value_name = "KEY=VALUE,... CMD", value_parser = CronSpec::keyval)]
    pub cron2: Vec<CronSpec>,

    /// Kill a cron run (its process group) after SECONDS (0: never).
    #[arg(long = "cron-harakiri", default_value_t = 0, value_name = "SECONDS")]
    pub cron_harakiri: u64,

    /// Run ACTION:ARG first of all, before the sockets are bound (uWSGI's
    /// hooks: exec:CMD, safeexec:, chdir:, mkdir:, putenv:K=V, unlink:,
    /// create:, write:FILE TEXT, writen:, append:, appendn:, print:,
    /// exit:, pycall:module.function). A failing hook stops the server.
    /// Repeatable, as are all --hook-* and --exec-* options.
    #[arg(long = "hook-asap", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_asap: Vec<Hook>,

    /// A hook run after binding, before privileges are dropped.
    #[arg(long = "hook-as-root", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_as_root: Vec<Hook>,

    /// A hook run right after privileges are dropped.
    #[arg(long = "hook-as-user", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_as_user: Vec<Hook>,

    /// A hook run before the app is loaded (in the master, or each worker
    /// with --lazy-apps).
    #[arg(long = "hook-pre-app", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_pre_app: Vec<Hook>,

    /// A hook run after the app is loaded, where it was loaded.
    #[arg(long = "hook-post-app", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_post_app: Vec<Hook>,

    /// A hook run in each worker right after it is forked.
    #[arg(long = "hook-post-fork", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_post_fork: Vec<Hook>,

    /// A hook run when the master's loop starts.
    #[arg(long = "hook-master-start", value_name = "ACTION:ARG", value_parser = Hook::parse)]
    pub hook_master_start: Vec<Hook>,

    /// --hook-asap exec:CMD.
    #[arg(long = "exec-asap", value_name = "CMD", value_parser = Hook::exec)]
    pub exec_asap: Vec<Hook>,

    /// --hook-as-root exec:CMD.
    #[arg(long = "exec-as-root", value_name = "CMD", value_parser = Hook::exec)]
    pub exec_as_root: Vec<Hook>,

    /// --hook-as-user exec:CMD.
    #[arg(long = "exec-as-user", value_name = "CMD", value_parser = Hook::exec)]
    pub exec_as_user: Vec<Hook>,

    /// --hook-pre-app exec:CMD.
    #[arg(long = "exec-pre-app", value_name = "CMD", value_parser = Hook::exec)]
    pub exec_pre_app: Vec<Hook>,

    /// --hook-post-app exec:CMD.
    #[arg(long = "exec-post-app", value_name = "CMD", value_parser = Hook::exec)]
    pub exec_post_app: Vec<Hook>,

    /// Write the master's pid to FILE.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Remove Unix socket files and the pidfile on exit.
    #[arg(long)]
    pub vacuum: bool,

    /// Set the mode of Unix socket files (octal; no value: 666).
    #[arg(long = "chmod-socket", value_name = "MODE", num_args = 0..=1, default_missing_value = "666")]
    pub chmod_socket: Option<String>,

    /// Set the owner of Unix socket files: user[:group].
    #[arg(long = "chown-socket", value_name = "USER[:GROUP]")]
    pub chown_socket: Option<String>,

    /// Run as this user (name or uid) after binding the sockets.
    #[arg(long, value_name = "USER")]
    pub uid: Option<String>,

    /// Run as this group (name or gid) after binding the sockets.
    #[arg(long, value_name = "GROUP")]
    pub gid: Option<String>,

    /// Set the process's umask (octal, as uWSGI's `umask`) before binding
    /// anything, so Unix sockets, the pidfile and the app's files get it.
    #[arg(long, value_name = "MODE", value_parser = parse_umask)]
    pub umask: Option<String>,

    /// Set the open-file limit (RLIMIT_NOFILE, soft and hard) at start;
    /// raising the hard limit needs root.
    #[arg(long = "max-fd", value_name = "N")]
    pub max_fd: Option<u64>,

    /// Name every process NAME in `ps` (the master too, unless
    /// --procname-master names it).
    #[arg(long, value_name = "NAME")]
    pub procname: Option<String>,

    /// Put PREFIX before every process name.
    #[arg(long = "procname-prefix", value_name = "PREFIX")]
    pub procname_prefix: Option<String>,

    /// Put PREFIX and a space before every process name.
    #[arg(long = "procname-prefix-spaced", value_name = "PREFIX")]
    pub procname_prefix_spaced: Option<String>,

    /// Put SUFFIX after every process name.
    #[arg(long = "procname-append", value_name = "SUFFIX")]
    pub procname_append: Option<String>,

    /// Name the master process NAME in `ps`.
    #[arg(long = "procname-master", value_name = "NAME")]
    pub procname_master: Option<String>,

    /// The protocol of each socket inherited through systemd socket
    /// activation (LISTEN_FDS), in order; one value applies to all. Not
    /// needed when the socket units name them (FileDescriptorName=http,
    /// uwsgi or scgi).
    #[arg(long, value_name = "http|uwsgi|scgi")]
    pub protocol: Vec<String>,

    // Configuration files (src/config/mod.rs reads them before clap sees
    // the merged arguments; see docs/configuration.md, "Configuration files").
    /// Read options from a uWSGI ini file, from its [uwsgi] section or the
    /// one named after a colon. Repeatable.
    #[arg(long, value_name = "FILE[:SECTION]", help_heading = "Configuration")]
    pub ini: Vec<String>,

    /// Read options from an rwsgi TOML file (keys are the long option
    /// names). Repeatable.
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    pub config: Vec<PathBuf>,

    /// Say how each line of the configuration is taken, then exit (0 when
    /// rwsgi would start with it) without starting the server.
    #[arg(long = "check-config", help_heading = "Configuration")]
    pub check_config: bool,

    /// Refuse to start on a configuration line rwsgi would not honour
    /// safely (a name neither uWSGI nor rwsgi has, as uWSGI's strict mode
    /// refuses; or an option rwsgi does not do and the app may rely on)
    /// instead of warning.
    #[arg(long, help_heading = "Configuration")]
    pub strict: bool,

    /// Set an environment variable for the app (before Python starts).
    /// Repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::env::parse_assignment,
          help_heading = "Configuration")]
    pub env: Vec<String>,
}

impl Cli {
    /// Every listener asked for, or HTTP on 127.0.0.1:8000 when none was.
    pub fn listeners(&self) -> Vec<ListenSpec> {
        let mut specs = Vec::new();
        for (protocol, addrs) in [
            (Protocol::Http, &self.http_socket),
            (Protocol::Uwsgi, &self.uwsgi_socket),
            (Protocol::Scgi, &self.scgi_socket),
        ] {
            specs.extend(addrs.iter().map(|addr| ListenSpec {
                protocol,
                addr: addr.clone(),
            }));
        }
        if specs.is_empty() {
            specs.push(ListenSpec {
                protocol: Protocol::Http,
                addr: ListenAddr::Tcp(([127, 0, 0, 1], 8000).into()),
            });
        }
        specs
    }

    /// Whether any option names a listener (else [`Cli::listeners`] gives
    /// the built-in default).
    pub fn names_a_listener(&self) -> bool {
        !(self.http_socket.is_empty()
            && self.uwsgi_socket.is_empty()
            && self.scgi_socket.is_empty())
    }

    /// The codec limits the options set.
    pub fn limits(&self) -> Limits {
        Limits {
            request_line: self.limit_request_line,
            header_count: self.limit_request_fields,
            header_field: self.limit_request_field_size,
            head_size: self.limit_request_head,
            vars_block: self.buffer_size,
            body: self.limit_post,
        }
    }

    /// Where the app comes from (`--module`, `--wsgi-file`...).
    pub fn app_spec(&self) -> AppSpec {
        AppSpec {
            module: self.module.clone(),
            wsgi_file: self.wsgi_file.clone(),
            callable: self.callable.clone(),
            chdir: self.chdir.clone(),
            pythonpath: self.pythonpath.clone(),
            home: self.home.clone(),
            imports: self.import.clone(),
            mounts: self
                .mount
                .iter()
                .map(|m| (m.prefix.clone(), m.target.clone()))
                .collect(),
            manage_script_name: self.manage_script_name,
        }
    }

    /// The `--static-map` / `--static-safe` settings.
    pub fn static_files(&self) -> StaticFiles {
        StaticFiles::new(self.static_map.clone(), self.static_safe.clone()).with_options(
            StaticOptions {
                gzip_all: self.static_gzip_all,
                gzip_regex: self.static_gzip.clone(),
                gzip_prefix: self.static_gzip_dir.clone(),
                gzip_suffix: self.static_gzip_ext.clone(),
                expires: self.static_expires.clone(),
                expires_uri: self.static_expires_uri.clone(),
                expires_type: self.static_expires_type.clone(),
            },
        )
    }

    /// The `--add-header` values as header lines, `Name: value\r\n` each.
    pub fn added_header_lines(&self) -> Vec<u8> {
        let mut lines = Vec::new();
        for header in &self.add_header {
            lines.extend_from_slice(header.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        lines
    }

    /// The hooks of `phase`: the --hook-* ones, then the --exec-* ones,
    /// as uWSGI runs them.
    pub fn hooks(&self, phase: HookPhase) -> Vec<Hook> {
        let (hooks, execs): (&[Hook], &[Hook]) = match phase {
            HookPhase::Asap => (&self.hook_asap, &self.exec_asap),
            HookPhase::AsRoot => (&self.hook_as_root, &self.exec_as_root),
            HookPhase::AsUser => (&self.hook_as_user, &self.exec_as_user),
            HookPhase::PreApp => (&self.hook_pre_app, &self.exec_pre_app),
            HookPhase::PostApp => (&self.hook_post_app, &self.exec_post_app),
            HookPhase::PostFork => (&self.hook_post_fork, &[]),
            HookPhase::MasterStart => (&self.hook_master_start, &[]),
        };
        hooks.iter().chain(execs).cloned().collect()
    }

    /// Every cron entry, in the order of the option kinds.
    pub fn crons(&self) -> Vec<CronSpec> {
        [&self.cron, &self.unique_cron, &self.cron2]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Every attached daemon, in the order of the option kinds.
    pub fn daemons(&self) -> Vec<DaemonSpec> {
        [
            &self.attach_daemon,
            &self.attach_control_daemon,
            &self.smart_attach_daemon,
            &self.smart_attach_daemon2,
            &self.attach_daemon2,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// The dispatch queue's capacity.
    pub fn queue_size(&self) -> usize {
        self.queue_size
            .unwrap_or_else(|| (self.threads as usize * 64).max(1024))
    }
}

/// An `--add-header` value: `Name: value`, a token name and a value
/// without control characters (so it can never split the response),
/// returned as `Name: value` with the space after the colon normalized.
fn parse_added_header(s: &str) -> Result<String, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not NAME: VALUE"))?;
    let name = name.trim();
    let value = value.trim();
    if name.is_empty() || !name.bytes().all(crate::protocol::http::syntax::is_tchar) {
        return Err(format!("{name:?} is not a header name"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!("the value of {name} has a control character"));
    }
    Ok(format!("{name}: {value}"))
}

/// A `--mount` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mountpoint, starting with `/`.
    pub prefix: String,
    /// The app: a file or `module[:callable]`.
    pub target: String,
}

fn parse_mount(s: &str) -> Result<Mount, String> {
    let (prefix, target) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not /PREFIX=TARGET"))?;
    let (prefix, target) = (prefix.trim(), target.trim());
    if !prefix.starts_with('/') {
        return Err(format!("the mountpoint {prefix:?} must start with '/'"));
    }
    if target.is_empty() {
        return Err(format!("no app after '=' in {s:?}"));
    }
    if target.ends_with(".ini") {
        return Err(
            "paste.deploy ini apps are not supported; mount module:callable or a file".into(),
        );
    }
    Ok(Mount {
        prefix: prefix.to_string(),
        target: target.to_string(),
    })
}
