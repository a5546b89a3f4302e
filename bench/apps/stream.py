"""A streamed body of 100 blocks of 1 KiB with no Content-Length, so the
server must frame it itself (chunked on HTTP/1.1, or close the connection)."""

BLOCK = b"x" * 1024
BLOCKS = 100


def application(environ, start_response):
    """Yields BLOCKS blocks one by one."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(BLOCKS):
        yield BLOCK
