"""A WSGI app that exercises every corner of PEP 3333 for rwsgi's tests.

Routes by PATH_INFO; each route is one behaviour the tests check.
"""

import hashlib
import io
import json
import os
import sys
import threading
import time

# Iterables whose close() was called, by tag (checked through /closes).
CLOSED = []
CLOSED_LOCK = threading.Lock()


def _types(environ):
    return {k: type(v).__name__ for k, v in environ.items()}


def _json(start_response, obj, status="200 OK"):
    data = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]


class Tracked:
    """An iterable that records its close() call under a tag."""

    def __init__(self, tag, items, fail_at=None, delay=0.0):
        self.tag, self.items, self.fail_at, self.delay = tag, items, fail_at, delay

    def __iter__(self):
        for i, item in enumerate(self.items):
            if self.fail_at == i:
                raise RuntimeError("boom in iteration " + self.tag)
            if self.delay:
                time.sleep(self.delay)
            yield item

    def close(self):
        with CLOSED_LOCK:
            CLOSED.append(self.tag)


def environ_route(environ, start_response):
    keys = {k: environ[k] for k in environ
            if isinstance(environ[k], (str, bool, tuple))}
    return _json(start_response, {"environ": keys, "types": _types(environ),
                                  "input_type": type(environ["wsgi.input"]).__name__})


def mutate_environ_route(environ, start_response):
    seen = {"scheme": environ["wsgi.url_scheme"], "leaked": "rwsgi.test.leak" in environ,
            "version": list(environ["wsgi.version"])}
    environ["wsgi.url_scheme"] = "mutated"
    environ["rwsgi.test.leak"] = True
    del environ["wsgi.run_once"]
    return _json(start_response, seen)


def input_route(environ, start_response):
    """Reads the body with the method named in the query string."""
    inp = environ["wsgi.input"]
    how = environ["QUERY_STRING"]
    if how == "read":
        out = {"data": inp.read().decode("latin-1")}
    elif how == "read-n":
        parts = []
        while True:
            chunk = inp.read(3)
            if not chunk:
                break
            parts.append(chunk.decode("latin-1"))
        out = {"parts": parts}
    elif how == "readline":
        out = {"lines": [inp.readline().decode(), inp.readline(4).decode(),
                         inp.readline().decode(), inp.readline().decode()]}
    elif how == "readlines":
        out = {"lines": [l.decode() for l in inp.readlines()]}
    elif how == "readlines-hint":
        out = {"lines": [l.decode() for l in inp.readlines(2)],
               "rest": inp.read().decode()}
    elif how == "iter":
        out = {"lines": [l.decode() for l in inp]}
    else:
        out = {"error": "unknown mode"}
    out["content_length"] = environ.get("CONTENT_LENGTH")
    return _json(start_response, out)


def digest_route(environ, start_response):
    """Streams the whole body through sha256 in 64 KiB reads."""
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    total = 0
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        h.update(chunk)
        total += len(chunk)
    return _json(start_response, {"size": total, "sha256": h.hexdigest()})


def bad_header_route(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: injected=1")])
    return [b"should never be sent"]


def latin1_headers_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Latin", "caf\u00e9"),
                              ("X-Padded", "  v  "), ("X-After", "ok")])
    return [b"headers"]


def non_latin1_header_route(environ, start_response):
    start_response("200 OK", [("X-Snowman", "snow \u2603")])
    return [b"should never be sent"]


def bad_header_name_route(environ, start_response):
    start_response("200 OK", [("Bad Name", "x")])
    return [b"should never be sent"]


def bad_status_route(environ, start_response):
    start_response("OK", [])
    return [b"should never be sent"]


def exc_info_before_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replace me")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("X-Replaced", "yes")], sys.exc_info())
    return [b"replaced"]


def exc_info_after_route(environ, start_response):
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"
    return body()


def write_route(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"then ")
    return [b"returned"]


def lazy_route(environ, start_response):
    def body():
        yield b""
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Lazy", "1")])
        yield b"lazy "
        yield b"body"
    return body()


def close_ok_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ["QUERY_STRING"], [b"a", b"b"])


def close_error_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ["QUERY_STRING"], [b"a", b"b"], fail_at=0)


def close_disconnect_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ["QUERY_STRING"], [b"x" * 65536] * 2000, delay=0.001)


def closes_route(environ, start_response):
    with CLOSED_LOCK:
        return _json(start_response, {"closed": list(CLOSED)})


def stream_route(environ, start_response):
    """Yields two chunks at once, then waits for the test to create a flag
    file (the second chunk is one a server may gather with the next: it
    must still reach the client while the app waits)."""
    flag = environ["QUERY_STRING"]

    def body():
        yield b"first chunk;"
        yield b"then another;"
        deadline = time.time() + 10
        while not os.path.exists(flag) and time.time() < deadline:
            time.sleep(0.01)
        yield b"second chunk" if os.path.exists(flag) else b"timed out"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return body()


def file_route(environ, start_response):
    path = environ["QUERY_STRING"]
    f = open(path, "rb")
    f.seek(10)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 4096)


def filelike_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO " * 1000), 1000)


def errors_route(environ, start_response):
    environ["wsgi.errors"].write("a line for the server log\n")
    environ["wsgi.errors"].writelines(["second ", "line\n"])
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]


def raise_route(environ, start_response):
    raise KeyError("the app failed on purpose")


def sleep_route(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or "0.2"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [threading.current_thread().name.encode()]


def echo_route(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def generator_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"chunk%d;" % i for i in range(5))


def status_route(environ, start_response):
    code = int(environ["QUERY_STRING"] or "200")
    start_response("%d Chosen" % code, [("Content-Type", "text/plain")])
    return [b"status %d" % code]


def one_arg_route(environ, start_response):
    # start_response and write are one object (src/wsgi/responder.rs): a
    # start_response call missing its headers must still be an error.
    start_response("200 OK")
    return [b"never"]


class TailedBody:
    """A whole Content-Length body, then post-response work in close():
    `ms=N` sleeps N ms; `flag=PATH` waits (up to 10 s) for the file PATH,
    which the client writes once it has the body, and records in
    PATH.seen whether it came ("signalled") or not ("timeout")."""

    def __init__(self, query):
        self.args = dict(part.split("=", 1) for part in query.split("&") if "=" in part)

    def __iter__(self):
        yield b"tailed body"

    def close(self):
        if "ms" in self.args:
            time.sleep(int(self.args["ms"]) / 1000)
            return
        flag = self.args["flag"]
        deadline = time.monotonic() + 10
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(flag + ".seen", "w") as f:
            f.write("signalled" if os.path.exists(flag) else "timeout")


def tail_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return TailedBody(environ["QUERY_STRING"])


# What /keep holds on to after its request (checked by /late-write).
KEPT = []


def keep_route(environ, start_response):
    KEPT.append((start_response, environ))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"kept"]


def late_write_route(environ, start_response):
    # Writes through the start_response of a request that ended: it must
    # not reach this response (or any other), nor break it.
    old_write, old_environ = KEPT[-1]
    start_response("200 OK", [("Content-Type", "text/plain")])
    outcome = []
    try:
        old_write(b"LEAKED")
        outcome.append("write returned")
    except Exception as e:
        outcome.append(type(e).__name__)
    old_environ["wsgi.errors"].write("late line from an ended request\n")
    return [b"clean:" + ",".join(outcome).encode()]


def empty_route(environ, start_response):
    start_response("204 No Content", [])
    return []


ROUTES = {
    "/environ": environ_route,
    "/input": input_route,
    "/mutate-environ": mutate_environ_route,
    "/digest": digest_route,
    "/bad-header": bad_header_route,
    "/bad-status": bad_status_route,
    "/latin1-headers": latin1_headers_route,
    "/non-latin1-header": non_latin1_header_route,
    "/bad-header-name": bad_header_name_route,
    "/exc-info-before": exc_info_before_route,
    "/exc-info-after": exc_info_after_route,
    "/write": write_route,
    "/lazy": lazy_route,
    "/close-ok": close_ok_route,
    "/close-error": close_error_route,
    "/close-disconnect": close_disconnect_route,
    "/closes": closes_route,
    "/stream": stream_route,
    "/file": file_route,
    "/filelike": filelike_route,
    "/errors": errors_route,
    "/raise": raise_route,
    "/sleep": sleep_route,
    "/echo": echo_route,
    "/generator": generator_route,
    "/empty": empty_route,
    "/keep": keep_route,
    "/late-write": late_write_route,
    "/tail": tail_route,
    "/one-arg": one_arg_route,
    "/status": status_route,
}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"], environ_route)
    return route(environ, start_response)
