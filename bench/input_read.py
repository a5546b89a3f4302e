#!/usr/bin/env python3
"""Times reading a large streamed request body through `wsgi.input`.

A body larger than --post-buffering (1 MiB by default) is not read before
the app runs: it streams into `wsgi.input` piece by piece as the socket
delivers it. This script starts rwsgi with a small app, POSTs one body of
--size MiB over HTTP on 127.0.0.1, and prints how long the request took
from the first byte sent to the last byte of the answer, and the app's own
time inside `wsgi.input`.

    bench/input_read.py                                  # target/release/rwsgi, 64 MiB, every mode
    bench/input_read.py --binary /tmp/old-rwsgi --size 16 --mode read
    bench/input_read.py --repeat 5

Modes (what the app does with `environ['wsgi.input']`):

- read:     `read()` with no size: the whole body at once.
- read-n:   `read(CONTENT_LENGTH)`, as most frameworks do.
- lines:    `for line in input` over 64-byte lines.
- one-line: `readline()` over a body without a newline (one long line).

The server runs with one worker and two threads (the pool, not the inline
path) and is stopped by its own pid. Not a test: nothing here asserts a
time.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

APP = '''
import time

def application(environ, start_response):
    inp = environ["wsgi.input"]
    mode = environ["PATH_INFO"].strip("/")
    began = time.perf_counter()
    if mode == "read":
        size = len(inp.read())
    elif mode == "read-n":
        size = len(inp.read(int(environ["CONTENT_LENGTH"])))
    else:
        size = sum(len(line) for line in inp)
    took = time.perf_counter() - began
    body = ("%d %.6f" % (size, took)).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''

MODES = ["read", "read-n", "lines", "one-line"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(REPO, "target", "release", "rwsgi"))
    p.add_argument("--size", type=int, default=64, help="body size in MiB (default 64)")
    p.add_argument("--mode", choices=MODES, action="append", help="default: every mode")
    p.add_argument("--repeat", type=int, default=3, help="runs per mode; the best is shown")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    return p.parse_args(argv)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, app_path, port, log):
    args = [binary, "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", app_path,
            "--workers", "1", "--threads", "2"]
    server = subprocess.Popen(args, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"rwsgi exited during startup; see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    stop(server)
    sys.exit("rwsgi did not start")


def stop(server):
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def body_block(mode):
    """A 64 KiB block of the body for `mode`."""
    if mode == "one-line":
        return b"x" * 65536
    return (b"y" * 63 + b"\n") * 1024


def post(port, mode, size, timeout):
    """Sends one POST of `size` bytes; returns (seconds, app seconds)."""
    block = body_block(mode)
    head = (f"POST /{mode} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for _ in range(size // len(block)):
            s.sendall(block)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    took = time.perf_counter() - began
    status, _, rest = reply.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2].decode()
    if b" 200 " not in status:
        sys.exit(f"{mode}: {reply[:200]!r}")
    got, app_took = body.split()
    if int(got) != size:
        sys.exit(f"{mode}: the app read {got} bytes of {size}")
    return took, float(app_took)


def main(argv):
    args = parse_args(argv)
    size = args.size * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        app_path = os.path.join(tmp, "input_app.py")
        with open(app_path, "w") as f:
            f.write(APP)
        with open(os.path.join(tmp, "rwsgi.log"), "w") as log:
            port = free_port()
            server = start_server(args.binary, app_path, port, log)
            try:
                print(f"{args.binary}: {args.size} MiB streamed body, best of {args.repeat}")
                for mode in args.mode or MODES:
                    runs = [post(port, mode, size, args.timeout) for _ in range(args.repeat)]
                    took, app_took = min(runs)
                    print(f"  {mode:9} request {took:8.3f} s   in wsgi.input {app_took:8.3f} s")
            finally:
                stop(server)


if __name__ == "__main__":
    main(sys.argv[1:])
