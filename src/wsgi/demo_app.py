"""rwsgi's built-in demo app: shows the request's WSGI environ."""

import html
import sys


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    rows = "".join(
        "<tr><th>{}</th><td>{}</td></tr>".format(html.escape(str(k)), html.escape(repr(v)))
        for k, v in sorted(environ.items())
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rwsgi</title></head>"
        "<body><h1>Hello from rwsgi</h1>"
        "<p>This is the built-in demo app. Serve your own with "
        "<code>--module package.module:application</code> or <code>--wsgi-file app.py</code>.</p>"
        "<p>Python {}; request body: {} bytes.</p>"
        "<table>{}</table></body></html>"
    ).format(html.escape(sys.version.split()[0]), len(body), rows)
    data = page.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(data)))])
    return [data]
