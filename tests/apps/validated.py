"""A small app wrapped in wsgiref.validate.validator, with every WSGI
warning turned into an error, so any protocol slip by the server (or the
app) becomes a 500 that the test sees."""

import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def _app(environ, start_response):
    # The validator insists on read(size), as PEP 333 did.
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.errors"].write("validated request\n")
    out = b"ok " + str(len(body)).encode()
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(out)))])
    assert callable(write)
    return [out]


application = validator(_app)
