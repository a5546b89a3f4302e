"""Reads a streamed request body (larger than --post-buffering) through
each of wsgi.input's methods and sends back what it read, for
tests/wsgi_input.rs. Headers say how the reads were cut:

- X-Reads: how many reads returned data.
- X-Bad: reads whose size or end broke the method's contract.
"""


def read_all(inp):
    data = inp.read()
    return [data], 0


def read_n(inp):
    reads = []
    while True:
        piece = inp.read(1000)
        if not piece:
            return reads, 0
        reads.append(piece)


def readline_sized(inp):
    reads = []
    while True:
        piece = inp.readline(7)
        if not piece:
            return reads, 0
        reads.append(piece)


def iterate(inp):
    return list(inp), 0


def readlines(inp):
    return inp.readlines(), 0


def count_bad(route, reads):
    """Reads that do not end where their method must stop."""
    body = b"".join(reads)
    bad = 0
    at = 0
    for i, piece in enumerate(reads):
        at += len(piece)
        last = i == len(reads) - 1
        if route in ("/iter", "/readlines"):
            ok = piece.endswith(b"\n") or last
            ok = ok and b"\n" not in piece[:-1]
        elif route == "/readline-7":
            ok = len(piece) <= 7 and b"\n" not in piece[:-1]
            ok = ok and (piece.endswith(b"\n") or len(piece) == 7 or last)
        elif route == "/read-n":
            ok = len(piece) == 1000 or last
        else:
            ok = True
        bad += not ok
    return body, bad


ROUTES = {
    "/read": read_all,
    "/read-n": read_n,
    "/readline-7": readline_sized,
    "/iter": iterate,
    "/readlines": readlines,
}


def application(environ, start_response):
    route = environ["PATH_INFO"]
    reads, _ = ROUTES[route](environ["wsgi.input"])
    body, bad = count_bad(route, reads)
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("X-Reads", str(len(reads))),
            ("X-Bad", str(bad)),
        ],
    )
    return [body]
