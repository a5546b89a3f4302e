"""nginx in front of a server for the proxy scenarios.

Each run gets its own prefix directory holding the generated config, the
pid file, the error log and every temp path; nginx listens on 127.0.0.1
only, runs in the foreground (`daemon off`) with one worker process, and is
stopped by its own pid (its process group, which we created). The uwsgi and
SCGI parameters are the stock `uwsgi_params` / `scgi_params` of the Debian
package, written out in full so the config does not depend on /etc/nginx.
The HTTP route (`proxy_pass`) keeps idle connections to the server open as
the shipped `nginx/http.conf` does, with the same `keepalive` pool size.
"""

import os
import re
import shutil

from . import procs

UWSGI_PARAMS = """
        uwsgi_param QUERY_STRING $query_string;
        uwsgi_param REQUEST_METHOD $request_method;
        uwsgi_param CONTENT_TYPE $content_type;
        uwsgi_param CONTENT_LENGTH $content_length;
        uwsgi_param REQUEST_URI $request_uri;
        uwsgi_param PATH_INFO $document_uri;
        uwsgi_param DOCUMENT_ROOT $document_root;
        uwsgi_param SERVER_PROTOCOL $server_protocol;
        uwsgi_param REQUEST_SCHEME $scheme;
        uwsgi_param HTTPS $https if_not_empty;
        uwsgi_param REMOTE_ADDR $remote_addr;
        uwsgi_param REMOTE_PORT $remote_port;
        uwsgi_param SERVER_PORT $server_port;
        uwsgi_param SERVER_NAME $server_name;
        uwsgi_param HTTP_HOST $host;"""

SCGI_PARAMS = """
        scgi_param REQUEST_METHOD $request_method;
        scgi_param REQUEST_URI $request_uri;
        scgi_param QUERY_STRING $query_string;
        scgi_param CONTENT_TYPE $content_type;
        scgi_param DOCUMENT_URI $document_uri;
        scgi_param DOCUMENT_ROOT $document_root;
        scgi_param SCGI 1;
        scgi_param SERVER_PROTOCOL $server_protocol;
        scgi_param REQUEST_SCHEME $scheme;
        scgi_param HTTPS $https if_not_empty;
        scgi_param REMOTE_ADDR $remote_addr;
        scgi_param REMOTE_PORT $remote_port;
        scgi_param SERVER_PORT $server_port;
        scgi_param SERVER_NAME $server_name;
        scgi_param HTTP_HOST $host;"""


def binary():
    """The nginx executable, or None."""
    return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shipped_keepalive():
    """The upstream `keepalive` pool size of the shipped nginx/http.conf."""
    with open(os.path.join(REPO, "nginx", "http.conf")) as f:
        found = re.search(r"^\s*keepalive\s+(\d+);", f.read(), re.MULTILINE)
    if not found:
        raise SystemExit("nginx/http.conf has no `keepalive N;` line for the http-unix route")
    return int(found.group(1))


def location(route, upstream):
    """The `location /` body passing requests to `upstream` over `route`."""
    if route.startswith("uwsgi"):
        return f"{UWSGI_PARAMS}\n        uwsgi_pass {upstream};"
    if route.startswith("http"):
        # The `upstream app` block (see config) holds the idle connections.
        return ('\n        proxy_pass http://app;\n        proxy_http_version 1.1;'
                '\n        proxy_set_header Connection "";\n        proxy_set_header Host $host;')
    return f"{SCGI_PARAMS}\n        scgi_pass {upstream};"


def upstream_block(route, upstream):
    """For the HTTP route, the `upstream app` block with the shipped
    keepalive pool (and its 4 s idle time, under rwsgi's 5 s)."""
    if not route.startswith("http"):
        return ""
    return (f"    upstream app {{\n        server {upstream};\n"
            f"        keepalive {shipped_keepalive()};\n        keepalive_timeout 4s;\n    }}\n")


# Each kind of temp path nginx would otherwise put under its compiled-in prefix.
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def config(prefix, port, route, upstream):
    """The whole nginx.conf for one run in front of a server."""
    return conf_text(prefix, f"127.0.0.1:{port}", f"location / {{{location(route, upstream)}\n        }}",
                     http_extra=upstream_block(route, upstream))


def conf_text(prefix, listen, location_block, workers=1, http_extra=""):
    """An nginx.conf keeping every file under `prefix`, with one server on
    `listen` whose `location` block is given whole."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach our 0700 temp dir
    temps = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in TEMP_KINDS)
    return f"""{user}daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{http_extra}{temps}
    server {{
        listen {listen} backlog=1024;
        {location_block}
    }}
}}
"""


class Nginx:
    """A running nginx for one run."""

    def __init__(self, prefix, route, listen):
        self.prefix = prefix
        self.port = procs.free_port()
        upstream = f"unix:{listen.addr}" if listen.kind == "unix" else listen.addr
        self.conf = config(prefix, self.port, route, upstream)
        self.conf_path = os.path.join(prefix, "nginx.conf")
        self.argv = [binary(), "-p", prefix, "-c", self.conf_path, "-e", f"{prefix}/error.log"]
        self.proc = None

    def start(self, log_path):
        """Writes the config, starts nginx and waits for its port."""
        os.makedirs(self.prefix, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(self.conf)
        self.proc = procs.start(self.argv, log_path)
        procs.wait_listening(self.proc, ("127.0.0.1", self.port), timeout=10)

    def stop(self):
        """Stops nginx (SIGTERM to the group we started, then SIGKILL)."""
        if self.proc is not None:
            procs.stop(self.proc, grace=5)
            self.proc = None
