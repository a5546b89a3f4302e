"""A stand-in for a Django project's mysite/wsgi.py, for tests/config.rs.

It answers every request with JSON of what the configuration should have
set up: the app's environment variables (APP_* and DJANGO_*), the working
directory, sys.path, and the WSGI threading flags.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")


def application(environ, start_response):
    body = json.dumps({
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("APP_", "DJANGO_"))},
        "cwd": os.getcwd(),
        "sys_path": sys.path,
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "pid": os.getpid(),
    }, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
