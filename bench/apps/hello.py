"""The smallest WSGI app: a fixed 13-byte body with a Content-Length."""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    """Answers every request with `Hello, World!`."""
    start_response("200 OK", HEADERS)
    return [BODY]
