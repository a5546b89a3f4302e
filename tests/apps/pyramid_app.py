"""A Pyramid app (a Configurator with routes and views) for the framework
tests (tests/frameworks.rs).

Served unchanged by rwsgi: `--module pyramid_app:application`.
"""

import hashlib

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response

FRAMEWORK = "pyramid"


def hello(request):
    return Response(f"hello from {FRAMEWORK}", content_type="text/plain", charset="utf-8")


def form(request):
    return {"framework": FRAMEWORK, "form": dict(request.POST)}


def json_echo(request):
    data = request.json_body
    return {
        "framework": FRAMEWORK,
        "received": data,
        "sum": sum(data["numbers"]),
        "count": len(data["numbers"]),
    }


def upload(request):
    field = request.POST["file"]
    content = field.file.read()
    return {
        "framework": FRAMEWORK,
        "field": "file",
        "filename": field.filename,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "note": request.POST.get("note"),
    }


def set_cookie(request):
    response = Response("cookies set", content_type="text/plain", charset="utf-8")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "abc123", httponly=True)
    return response


def cookies(request):
    return {"framework": FRAMEWORK, "cookies": dict(request.cookies)}


def go_hello(request):
    return HTTPFound(location="/hello")


def make_app():
    with Configurator() as config:
        routes = [
            ("hello", "/hello", hello, "GET", None),
            ("form", "/form", form, "POST", "json"),
            ("json", "/json", json_echo, "POST", "json"),
            ("upload", "/upload", upload, "POST", "json"),
            ("set_cookie", "/set-cookie", set_cookie, "GET", None),
            ("cookies", "/cookies", cookies, "GET", "json"),
            ("redirect", "/redirect", go_hello, "GET", None),
        ]
        for name, pattern, view, method, renderer in routes:
            config.add_route(name, pattern, request_method=method)
            config.add_view(view, route_name=name, renderer=renderer)
        return config.make_wsgi_app()


application = make_app()
