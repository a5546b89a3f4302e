"""Runs bjoern or Pyruvate as N processes sharing one listening socket.

Neither server has a process manager: bjoern is one single-threaded
process, Pyruvate one process with a pool of threads. This launcher binds
the socket once, forks N workers that all accept on it, forwards SIGTERM /
SIGINT to them (by their pids) and exits when they are all gone.

    launch.py bjoern   --bind 127.0.0.1:8000 --workers 2 --chdir DIR MODULE:CALLABLE
    launch.py pyruvate --bind 127.0.0.1:8000 --workers 2 --threads 1 --chdir DIR MODULE:CALLABLE

bjoern: `bjoern.listen()` then fork, then `bjoern.run()` in each child (the
pattern bjoern documents). Pyruvate: the parent binds, each child gets the
socket as fd 3 with LISTEN_FDS/LISTEN_PID set and calls
`pyruvate.serve(app, None, threads)`, Pyruvate's systemd socket activation.
Pyruvate runs with its defaults, which close the connection after each
response (`max_reuse_count=0`, `Connection: close`). Turning keep-alive on
pins a connection to a worker thread, so with 1 thread per process wrk's
other connections starve (32 req/s); and `chunked_transfer=True` in 1.6.1
also appends a last-chunk to responses that have a Content-Length.
"""

import argparse
import importlib
import os
import signal
import socket
import sys
import traceback

BACKLOG = 1024


def parse_args(argv):
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("server", choices=["bjoern", "pyruvate"])
    p.add_argument("app", help="MODULE:CALLABLE")
    p.add_argument("--bind", required=True, help="host:port or a Unix socket path")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="Pyruvate worker threads per process")
    p.add_argument("--chdir", default=".")
    return p.parse_args(argv)


def load_app(spec, chdir):
    """Imports MODULE:CALLABLE from `chdir`."""
    os.chdir(chdir)
    sys.path.insert(0, os.getcwd())
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "application")


def bind(addr):
    """A listening socket on host:port or a Unix path."""
    if ":" in addr:
        host, port = addr.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    else:
        if os.path.exists(addr):
            os.unlink(addr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(addr)
    sock.listen(BACKLOG)
    return sock


def serve_bjoern(app, args):
    """Listens, forks, and runs bjoern's loop in each child."""
    import bjoern

    if ":" in args.bind:
        host, port = args.bind.rsplit(":", 1)
        bjoern.listen(app, host, int(port), listen_backlog=BACKLOG)
    else:
        bjoern.listen(app, "unix:" + args.bind, listen_backlog=BACKLOG)
    return fork_workers(args.workers, bjoern.run)


def serve_pyruvate(app, args):
    """Binds, forks, and hands the socket to Pyruvate in each child."""
    import pyruvate

    sock = bind(args.bind)

    def child():
        os.dup2(sock.fileno(), 3)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        pyruvate.serve(app, None, args.threads)

    return fork_workers(args.workers, child)


def fork_workers(n, run):
    """Forks n children running `run()`, waits for them, forwards signals."""
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 0
            try:
                run()
            except BaseException:  # report, then leave without unwinding the parent's state
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)

    def stop(signum, _frame):
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for pid in pids:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


def main(argv):
    """Loads the app and serves it with the chosen server."""
    args = parse_args(argv)
    app = load_app(args.app, args.chdir)
    serve = serve_bjoern if args.server == "bjoern" else serve_pyruvate
    return serve(app, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
