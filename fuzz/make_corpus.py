#!/usr/bin/env python3
"""Writes the checked-in seed corpora under fuzz/corpus/<target>/.

Deterministic: running it again rewrites the same files. Run it from
anywhere: `python3 fuzz/make_corpus.py`. The HTTP seeds are gunicorn's public
request vectors (shared/conformance-vectors/gunicorn, escapes decoded the way
tests/http_conformance.rs decodes them) plus a few pipelined and chunked
requests of our own; the others are built here, valid ones and broken ones.
"""

import os
import shutil
import struct
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(FUZZ, "..", "..", "shared", "conformance-vectors", "gunicorn")


def unescape(raw: bytes) -> bytes:
    """Undoes the vectors' escaping: raw newlines are layout only; `\\r`,
    `\\n`, `\\t`, `\\0` and `\\xHH` stand for bytes."""
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        i += 1
        if b == 0x0A:
            continue
        if b == 0x5C and i < len(raw):
            esc = raw[i]
            i += 1
            if esc == ord("x"):
                out.append(int(raw[i : i + 2], 16))
                i += 2
            else:
                out.append({ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("0"): 0}[esc])
            continue
        out.append(b)
    return bytes(out)


def http_seeds():
    seeds = {}
    for kind in ("valid", "invalid"):
        folder = os.path.join(VECTORS, kind)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".http"):
                with open(os.path.join(folder, name), "rb") as f:
                    seeds[f"gunicorn-{kind}-{name[:-5]}"] = unescape(f.read())
    get = b"GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    post = (
        b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 11\r\n\r\nhello world"
    )
    chunked = (
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n"
        b"0\r\nX-Sum: 1\r\n\r\n"
    )
    seeds["own-pipelined-get-post"] = get + post
    seeds["own-pipelined-chunked-get"] = chunked + get
    seeds["own-pipelined-three"] = post + chunked + get
    seeds["own-http10-keep-alive"] = (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"HEAD /h HTTP/1.0\r\n\r\n"
    )
    seeds["own-close-then-more"] = (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + get
    )
    seeds["own-repeated-fields"] = (
        b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n"
        b"Accept: a\r\nAccept: b\r\nX_Under: dropped\r\n\r\n"
    )
    seeds["own-leading-empty-lines"] = b"\r\n\r\n" + get
    seeds["own-options-asterisk"] = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"
    seeds["own-connect"] = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    seeds["own-absolute-form"] = b"GET http://example.com/p?q HTTP/1.1\r\nHost: x\r\n\r\n"
    return seeds


CHUNKED_BODIES = {
    "simple": b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "leading-zeros-any-case": b"0005\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n",
    "extensions": b'5; a; b=c ;d = "e \\" f"\r\nhello\r\n0;last\r\n\r\n',
    "trailers": b"1\r\nx\r\n0\r\nVary: *\r\nX-Sum: 1\r\n\r\n",
    "two-bodies": b"1\r\nx\r\n0\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "then-next-request": b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "largest-size": b"ffffffffffffffff\r\nab",
    "overflow": b"10000000000000000\r\nx\r\n",
    "signed": b"+5\r\nhello\r\n0\r\n\r\n",
    "empty-size": b";a=b\r\nhello\r\n0\r\n\r\n",
    "space-after-size": b"5 \r\nhello\r\n0\r\n\r\n",
    "bad-extension": b'5;a="open\r\nhello\r\n0\r\n\r\n',
    "bare-lf": b"5\nhello\r\n0\r\n\n",
    "missing-crlf-after-data": b"5\r\nhelloX\r\n0\r\n\r\n",
    "forbidden-trailer": b"1\r\nx\r\n0\r\nContent-Length: 9\r\n\r\n",
    "folded-trailer": b"0\r\nA: 1\r\n folded\r\n\r\n",
    "long-size-line": b"1;a=" + b"b" * 300 + b"\r\nx\r\n0\r\n\r\n",
    "many-trailers": b"0\r\n" + b"X-Pad: 0123456789\r\n" * 40 + b"\r\n",
    "many-small-chunks": b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefghij") + b"0\r\n\r\n",
    "unterminated": b"5\r\nhel",
}


def chunked_seeds():
    seeds = {f"own-{name}": body for name, body in CHUNKED_BODIES.items()}
    # The bodies of gunicorn's chunked vectors, head cut off.
    for name, request in http_seeds().items():
        if not name.startswith("gunicorn-") or b"chunked" not in request.lower():
            continue
        head_end = request.find(b"\r\n\r\n")
        body = request[head_end + 4 :] if head_end >= 0 else b""
        if body:
            seeds[name] = body
    return seeds


def uwsgi_packet(pairs, modifier1=0, modifier2=0):
    block = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs
    )
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block


NGINX_VARS = [
    (b"QUERY_STRING", b"a=1&b=%20"),
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"CONTENT_LENGTH", b"7"),
    (b"REQUEST_URI", b"/form?a=1&b=%20"),
    (b"PATH_INFO", b"/form"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"51234"),
    (b"SERVER_PORT", b"80"),
    (b"SERVER_NAME", b"localhost"),
    (b"HTTP_HOST", b"localhost"),
    (b"HTTP_CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"HTTP_CONTENT_LENGTH", b"7"),
    (b"HTTP_COOKIE", b"a=1"),
    (b"HTTP_COOKIE", b"b=2"),
]
GET_VARS = [
    (b"REQUEST_METHOD", b"GET"),
    (b"PATH_INFO", b"/"),
    (b"QUERY_STRING", b""),
    (b"SERVER_PROTOCOL", b"HTTP/1.0"),
    (b"HTTP_ACCEPT", b"a"),
    (b"HTTP_ACCEPT", b"b"),
]


def with_length(pairs, n):
    return [(k, str(n).encode() if k == b"CONTENT_LENGTH" else v) for k, v in pairs]


def uwsgi_seeds():
    post = uwsgi_packet(NGINX_VARS) + b"x=1&y=2"
    get = uwsgi_packet(GET_VARS)
    head = uwsgi_packet([(b"REQUEST_METHOD", b"HEAD"), (b"PATH_INFO", b"/h")])
    return {
        "nginx-post": post,
        "get": get,
        "head": head,
        "empty-vars": uwsgi_packet([]),
        "empty-key-and-value": uwsgi_packet([(b"", b""), (b"PATH_INFO", b"")]),
        "pipelined-post-get": post + get,
        "pipelined-three": get + head + post,
        "big-body": uwsgi_packet(with_length(NGINX_VARS, 300)) + bytes(range(256)) + b"z" * 44,
        "big-value": uwsgi_packet([(b"HTTP_X_BIG", b"v" * 400)]),
        "empty-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"")]),
        "huge-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"18446744073709551615")]),
        "overflow-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"18446744073709551616")]),
        "bad-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"12a")]),
        "modifier2-set": uwsgi_packet(GET_VARS, modifier2=1),
        "modifier1-5": uwsgi_packet(GET_VARS, modifier1=5),
        "truncated-var": bytes([0, 4, 0, 0, 10, 0]) + b"ab",
        "truncated-packet": get[: len(get) // 2],
        "declares-65535": b"\x00\xff\xff\x00" + b"\x01\x00a\x01\x00b",
        "http-on-uwsgi": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "http-prefix": b"GE",
    }


def netstring(pairs):
    block = b"".join(k + b"\0" + v + b"\0" for k, v in pairs)
    return str(len(block)).encode() + b":" + block + b","


SCGI_VARS = [
    (b"CONTENT_LENGTH", b"5"),
    (b"SCGI", b"1"),
    (b"REQUEST_METHOD", b"PUT"),
    (b"REQUEST_URI", b"/s?q=1"),
    (b"PATH_INFO", b"/s"),
    (b"QUERY_STRING", b"q=1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"HTTP_HOST", b"localhost"),
    (b"HTTP_X_A", b"1"),
    (b"HTTP_X_A", b"2"),
]


def scgi_seeds():
    put = netstring(SCGI_VARS) + b"hello"
    get = netstring([(b"CONTENT_LENGTH", b"0"), (b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")])
    return {
        "put": put,
        "get": get,
        "no-scgi-var": netstring([(b"CONTENT_LENGTH", b"0"), (b"PATH_INFO", b"/")]),
        "head-http10": netstring(
            [(b"CONTENT_LENGTH", b""), (b"REQUEST_METHOD", b"HEAD"), (b"SERVER_PROTOCOL", b"HTTP/1.0")]
        ),
        "pipelined-put-get": put + get,
        "pipelined-three": get + put + get,
        "big-body": netstring(with_length(SCGI_VARS, 300)) + b"b" * 300,
        "empty-value": netstring([(b"CONTENT_LENGTH", b"0"), (b"QUERY_STRING", b"")]),
        "empty-name": netstring([(b"CONTENT_LENGTH", b"0"), (b"", b"x")]),
        "content-length-not-first": netstring([(b"PATH_INFO", b"/"), (b"CONTENT_LENGTH", b"0")]),
        "bad-content-length": netstring([(b"CONTENT_LENGTH", b"-1")]),
        "missing-comma": netstring(SCGI_VARS)[:-1] + b";",
        "missing-nul": b"17:CONTENT_LENGTH\x000,",
        "length-padded": b"00" + netstring([(b"CONTENT_LENGTH", b"0")]),
        "length-too-long": b"99999999999:",
        "no-length": b":CONTENT_LENGTH\x000\x00,",
        "truncated": put[: len(put) // 2],
        "http-on-scgi": b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "empty-netstring": b"0:,",
    }


def write(target, seeds):
    folder = os.path.join(FUZZ, "corpus", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    size = sum(len(d) for d in seeds.values())
    print(f"{target}: {len(seeds)} seeds, {size} bytes", file=sys.stderr)


def main():
    write("http_head", http_seeds())
    write("chunked", chunked_seeds())
    write("uwsgi", uwsgi_seeds())
    write("scgi", scgi_seeds())


if __name__ == "__main__":
    main()
