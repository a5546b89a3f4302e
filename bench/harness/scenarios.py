"""The benchmark scenarios: which app, how it is reached, how hard wrk pushes.

Every scenario runs 2 worker processes x 1 thread unless it says otherwise.
`route` is how wrk's traffic reaches the server:

- `http`: wrk talks HTTP/1.1 to the server directly (TCP, 127.0.0.1);
- `uwsgi-unix`, `uwsgi-tcp`, `scgi-unix`: wrk talks to nginx, which passes
  the request on with `uwsgi_pass` / `scgi_pass` over a Unix socket or
  127.0.0.1 TCP: a new connection per request (neither protocol can carry
  a second one);
- `http-unix`: wrk talks to nginx, which passes the request on with
  `proxy_pass` over a Unix socket and keeps idle HTTP/1.1 connections to
  the server open, as the shipped nginx/http.conf does.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One measured situation."""

    name: str
    title: str
    app: str  # MODULE:CALLABLE in bench/apps
    route: str = "http"
    connections: int = 64
    processes: int = 2
    threads: int = 1
    body_bytes: int = 0  # >0: wrk POSTs this many bytes
    expect_bytes: int = 13  # response body length the sanity check wants

    @property
    def proxied(self):
        """Whether nginx stands between wrk and the server."""
        return self.route != "http"


SCENARIOS = [
    Scenario("hello-c64", "hello, direct HTTP, c=64", "hello:application"),
    Scenario("hello-c256", "hello, direct HTTP, c=256", "hello:application", connections=256),
    Scenario("nginx-uwsgi-unix", "hello, nginx → uwsgi_pass unix", "hello:application", "uwsgi-unix"),
    Scenario("nginx-uwsgi-tcp", "hello, nginx → uwsgi_pass tcp", "hello:application", "uwsgi-tcp"),
    Scenario("nginx-scgi-unix", "hello, nginx → scgi_pass unix", "hello:application", "scgi-unix"),
    Scenario(
        "nginx-http-unix",
        "hello, nginx → proxy_pass unix, keep-alive",
        "hello:application",
        "http-unix",
    ),
    Scenario(
        "post-64k",
        "POST 64 KiB echo",
        "echo:application",
        body_bytes=64 * 1024,
        expect_bytes=64 * 1024,
    ),
    Scenario(
        "stream-100x1k",
        "streamed 100 x 1 KiB, no length",
        "stream:application",
        expect_bytes=100 * 1024,
    ),
    Scenario(
        "file-1m",
        "1 MiB file via wsgi.file_wrapper",
        "file:application",
        expect_bytes=1024 * 1024,
    ),
    Scenario("flask-hello", "Flask hello", "flask_hello:application"),
    Scenario("django-hello", "Django hello", "django_hello:application"),
    Scenario(
        "flask-sleep-c1000",
        "Flask 200 ms sleep, c=1000, 2 x 500 threads",
        "flask_sleep:application",
        connections=1000,
        threads=500,
    ),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def select(names):
    """The scenarios named in `names` (all when empty), in table order."""
    if not names:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [s for s in SCENARIOS if s.name in names]
