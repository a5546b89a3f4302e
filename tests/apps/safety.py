"""Apps that push on rwsgi's own safety for tests/wsgi_safety.rs: file
wrappers over objects that lie about or lose their descriptor, and a
plain route for checking the server still answers.
"""

import io
import os


class NegativeFileno:
    """A file-like object whose fileno() says it has no descriptor."""

    def __init__(self, data):
        self.data = io.BytesIO(data)

    def read(self, size=-1):
        return self.data.read(size)

    def fileno(self):
        return -1


class ClosedByTell:
    """A real file whose tell() closes it and opens another file, which
    the kernel gives the freed descriptor number. A server that learnt the
    number before calling tell() would send the other file."""

    def __init__(self, path, decoy):
        self.f = open(path, "rb")
        self.decoy_path = decoy
        self.decoy = None

    def read(self, size=-1):
        return self.f.read(size)

    def tell(self):
        fd = self.f.fileno()
        self.f.close()
        self.decoy = open(self.decoy_path, "rb")
        assert self.decoy.fileno() == fd, "the decoy did not reuse the number"
        return 0

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()
        if self.decoy is not None:
            self.decoy.close()


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class Closing(list):
    """A body whose close() says in the log that it was called."""

    def __init__(self, items, errors, label):
        super().__init__(items)
        self.errors = errors
        self.label = label

    def close(self):
        self.errors.write("close() called for %s\n" % self.label)


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"not sent"], environ["wsgi.errors"], environ["PATH_INFO"])


def fileno_negative(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](NegativeFileno(b"iterated, not sent " * 500), 1000)


def fileno_closed_by_tell(environ, start_response):
    path = environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](ClosedByTell(path, path + ".decoy"), 4096)


ROUTES = {
    "/hello": hello,
    "/panic": closing,
    "/fileno-negative": fileno_negative,
    "/fileno-closed-by-tell": fileno_closed_by_tell,
}


def application(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)
