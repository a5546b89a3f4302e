"""rwsgi's dispatcher for uWSGI's `mount` (several apps in one process).

make(apps, default, manage) returns the WSGI callable rwsgi serves.
apps is a list of (mountpoint, app). With manage (`manage-script-name`)
the app is the one whose mountpoint is the longest prefix of PATH_INFO
(on a path segment), SCRIPT_NAME gains the mountpoint and PATH_INFO loses
it; without, the app is the one whose mountpoint is the SCRIPT_NAME the
proxy sent (nginx: uwsgi_param SCRIPT_NAME). Otherwise the default app
(--module / --wsgi-file) answers, or a 404 when there is none.
"""


def make(apps, default, manage):
    apps = sorted(apps, key=lambda pair: len(pair[0]), reverse=True)

    def not_mounted(environ, start_response):
        body = b"no app is mounted at this path\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    fallback = default if default is not None else not_mounted

    def by_path(environ, start_response):
        path = environ.get("PATH_INFO", "")
        for mountpoint, app in apps:
            if path == mountpoint or path.startswith(mountpoint + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mountpoint
                environ["PATH_INFO"] = path[len(mountpoint):]
                return app(environ, start_response)
        return fallback(environ, start_response)

    def by_script_name(environ, start_response):
        script_name = environ.get("SCRIPT_NAME", "").rstrip("/")
        for mountpoint, app in apps:
            if script_name == mountpoint:
                return app(environ, start_response)
        return fallback(environ, start_response)

    return by_path if manage else by_script_name
