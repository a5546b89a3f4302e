import os
import socket

from django.http import HttpResponse

from .models import Visit

PAGE = """<!doctype html>
<html>
<head><title>myproject</title><link rel="stylesheet" href="/static/myproject/style.css"></head>
<body><h1>Hello from rwsgi</h1>
<p>visit {count}, served by {served_by}</p></body>
</html>
"""


def served_by():
    return "{} pid {}".format(socket.gethostname(), os.getpid())


def index(request):
    Visit.objects.create(served_by=served_by())
    page = PAGE.format(count=Visit.objects.count(), served_by=served_by())
    return HttpResponse(page)


def healthz(request):
    """For liveness checks: answers without the database, so a database
    outage does not get every replica restarted."""
    return HttpResponse("ok\n", content_type="text/plain")
