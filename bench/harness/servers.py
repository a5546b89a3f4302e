"""The servers under test and their exact command lines.

Each server gets the same app object (MODULE:CALLABLE from bench/apps), the
same processes x threads, a 1024-connection listen backlog and no access
log. Only rwsgi and uWSGI speak the uwsgi and SCGI protocols, so only they
run the uwsgi_pass / scgi_pass scenarios; every server runs the HTTP ones
it can, direct or behind nginx's proxy_pass (over a Unix socket).

Choices made for fairness, also printed in the results:

- uWSGI: `--http-socket` for direct HTTP, which serves one request per
  connection, with `--add-header "Connection: close"` so clients know (else
  wrk counts every close as an error). Its `--http11-socket` keep-alive pins
  a connection to a worker: with 2 workers wrk's other 62 connections
  starve and the numbers mean nothing.
  `--socket` / `--scgi-socket` behind nginx; `--master`, `--die-on-term` so
  SIGTERM stops it, `--listen 1024` (its default is 100).
- Gunicorn: the `gthread` worker, which keeps connections alive (the `sync`
  worker closes each one), `--backlog 1024`.
- Granian: `--interface wsgi`, `--blocking-threads` = threads.
- bjoern, Pyruvate: through bench/launch.py, which binds once and forks
  the worker processes (neither has a process manager). bjoern is
  single-threaded, so it sits out the 500-thread scenario. Pyruvate runs
  with its defaults, which close each connection (see launch.py for why).
- rwsgi: `--processes` when the binary has it; until then one process with
  processes x threads Python threads, and the results say so.
- nginx: not a WSGI server but the ceiling: nginx itself answering the hello
  scenarios (`return 200`) and sending the 1 MiB file (sendfile), with as
  many worker processes as the scenario has. What it reaches is what wrk
  can drive on this machine for that response; a server at that figure is
  at the load generator's limit.
"""

import os
import subprocess
from dataclasses import dataclass, field

from . import nginx


@dataclass
class Paths:
    """Where things are: the repo, the peers' venv, the apps."""

    repo: str
    venv: str
    apps: str
    rwsgi: str

    @property
    def python(self):
        """The venv's interpreter."""
        return f"{self.venv}/bin/python"


@dataclass
class Listen:
    """Where one server run listens: ('tcp', '127.0.0.1:port') or ('unix', path)."""

    kind: str
    addr: str

    @property
    def connect_addr(self):
        """What socket.connect takes."""
        if self.kind == "tcp":
            host, port = self.addr.rsplit(":", 1)
            return (host, int(port))
        return self.addr


@dataclass
class Server:
    """A server: its name, which routes it serves, and how to start it."""

    name: str
    routes: tuple
    max_threads: int = 1_000_000
    notes: list = field(default_factory=list)
    only: tuple = ()  # scenario names, when the server runs only those

    def supports(self, scenario):
        """Whether this server can run `scenario`."""
        if self.only and scenario.name not in self.only:
            return False
        return scenario.route in self.routes and scenario.threads <= self.max_threads


HTTP = ("http", "http-unix")
ALL_ROUTES = (*HTTP, "uwsgi-unix", "uwsgi-tcp", "scgi-unix")


def rwsgi_has_processes(binary):
    """Whether this rwsgi build has a master with --processes."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
    return "--processes" in out.stdout


def rwsgi_argv(paths, sc, listen, has_processes):
    """rwsgi's command line."""
    flag = {"http": "--http-socket", "http-unix": "--http-socket", "uwsgi-unix": "--uwsgi-socket",
            "uwsgi-tcp": "--uwsgi-socket", "scgi-unix": "--scgi-socket"}[sc.route]
    if has_processes:
        scale = ["--processes", str(sc.processes), "--threads", str(sc.threads)]
    else:
        scale = ["--threads", str(sc.processes * sc.threads)]
    return [paths.rwsgi, flag, listen.addr, "--module", sc.app, "--chdir", paths.apps,
            "--home", paths.venv, *scale, "--listen", "1024", "--disable-logging"]


def uwsgi_argv(paths, sc, listen):
    """uWSGI's command line."""
    flag = {"http": "--http-socket", "http-unix": "--http-socket", "uwsgi-unix": "--socket",
            "uwsgi-tcp": "--socket", "scgi-unix": "--scgi-socket"}[sc.route]
    close = ["--add-header", "Connection: close"] if sc.route in HTTP else []
    return [f"{paths.venv}/bin/uwsgi", flag, listen.addr, *close, "--master", "--processes", str(sc.processes),
            "--threads", str(sc.threads), "--module", sc.app, "--chdir", paths.apps,
            "--virtualenv", paths.venv, "--listen", "1024", "--disable-logging", "--die-on-term",
            "--need-app"]


def gunicorn_argv(paths, sc, listen):
    """Gunicorn's command line."""
    bind = listen.addr if listen.kind == "tcp" else f"unix:{listen.addr}"
    return [f"{paths.venv}/bin/gunicorn", "--bind", bind, "--workers", str(sc.processes),
            "--worker-class", "gthread", "--threads", str(sc.threads), "--backlog", "1024",
            "--chdir", paths.apps, sc.app]


def granian_argv(paths, sc, listen):
    """Granian's command line."""
    if listen.kind == "tcp":
        host, port = listen.addr.rsplit(":", 1)
        bind = ["--host", host, "--port", port]
    else:
        bind = ["--uds", listen.addr]
    return [f"{paths.venv}/bin/granian", "--interface", "wsgi", *bind,
            "--workers", str(sc.processes), "--blocking-threads", str(sc.threads),
            "--backlog", "1024", "--no-access-log", "--working-dir", paths.apps, sc.app]


def launcher_argv(name, paths, sc, listen):
    """bjoern's or Pyruvate's command line (through bench/launch.py)."""
    argv = [paths.python, f"{paths.repo}/bench/launch.py", name, sc.app, "--bind", listen.addr,
            "--workers", str(sc.processes), "--chdir", paths.apps]
    if name == "pyruvate":
        argv += ["--threads", str(sc.threads)]
    return argv


SERVERS = {
    "rwsgi": Server("rwsgi", ALL_ROUTES),
    "uwsgi": Server("uwsgi", ALL_ROUTES),
    "gunicorn": Server("gunicorn", HTTP),
    "granian": Server("granian", HTTP),
    "bjoern": Server("bjoern", HTTP, max_threads=1),
    "pyruvate": Server("pyruvate", HTTP),
    "nginx": Server("nginx", HTTP, only=("hello-c64", "hello-c256", "file-1m")),
}

# The Python distribution each peer comes from (for versions and the
# installed check).
DISTRIBUTIONS = {"uwsgi": "uWSGI", "gunicorn": "gunicorn", "granian": "granian",
                 "bjoern": "bjoern", "pyruvate": "pyruvate"}


def nginx_ceiling_argv(sc, listen, workdir, env):
    """nginx answering `sc` itself; writes its config into `workdir`."""
    prefix = os.path.join(workdir, "ceiling")
    os.makedirs(prefix, exist_ok=True)
    if sc.name == "file-1m":
        path = env["BENCH_FILE"]
        answer = f"root {os.path.dirname(path)};\n            try_files /{os.path.basename(path)} =404;"
    else:
        answer = 'default_type text/plain;\n            return 200 "Hello, World!";'
    block = f"location = / {{\n            {answer}\n        }}"
    extra = "    sendfile on;\n    keepalive_requests 1000000;\n"
    conf = nginx.conf_text(prefix, listen.addr, block, workers=sc.processes, http_extra=extra)
    conf_path = os.path.join(prefix, "nginx.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    return [nginx.binary(), "-p", prefix, "-c", conf_path, "-e", f"{prefix}/error.log"]


def argv_for(name, paths, sc, listen, has_processes, workdir, env):
    """The exact command line that starts server `name` for `sc` (nginx's
    config goes into `workdir`; `env` is the servers' environment)."""
    if name == "nginx":
        return nginx_ceiling_argv(sc, listen, workdir, env)
    if name == "rwsgi":
        return rwsgi_argv(paths, sc, listen, has_processes)
    if name == "uwsgi":
        return uwsgi_argv(paths, sc, listen)
    if name == "gunicorn":
        return gunicorn_argv(paths, sc, listen)
    if name == "granian":
        return granian_argv(paths, sc, listen)
    return launcher_argv(name, paths, sc, listen)
