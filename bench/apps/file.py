"""Serves a 1 MiB file through `wsgi.file_wrapper` (sendfile where the
server has it).

The file is `$BENCH_FILE` (bench.py creates it); without that variable a
1 MiB file is made in the temp dir on first import.
"""

import os
import tempfile

SIZE = 1024 * 1024


def _ensure_file():
    """Returns the path of the 1 MiB file, creating it atomically if absent."""
    path = os.environ.get("BENCH_FILE") or os.path.join(tempfile.gettempdir(), "rwsgi-bench-1MiB.bin")
    if not os.path.exists(path) or os.path.getsize(path) != SIZE:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as out:
            out.write(os.urandom(SIZE))
        os.replace(tmp, path)
    return path


PATH = _ensure_file()


def application(environ, start_response):
    """Returns the file wrapped by the server's wsgi.file_wrapper."""
    f = open(PATH, "rb")
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(SIZE))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is None:
        return iter(lambda: f.read(65536), b"")
    return wrapper(f, 65536)
