"""Echoes the request body back (the POST scenario sends 64 KiB)."""


def application(environ, start_response):
    """Reads CONTENT_LENGTH bytes of wsgi.input and returns them."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]
