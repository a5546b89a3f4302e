"""An app for the master/worker tests: tells which process served a request,
which process imported it, and which version of its code is loaded."""

import os
import time

IMPORT_PID = os.getpid()
HERE = os.path.dirname(os.path.abspath(__file__))

# A marker file next to this module makes every new import die at once
# (a worker that keeps crashing right after start).
if os.path.exists(os.path.join(HERE, "die-on-import")):
    os._exit(7)

try:
    with open(os.path.join(HERE, "version.txt")) as f:
        VERSION = f.read().strip()
except OSError:
    VERSION = "none"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
    if path == "/sigblk":
        # The signals blocked in a process the app starts.
        import subprocess
        body = subprocess.run(["grep", "SigBlk", "/proc/self/status"],
                              capture_output=True, check=True).stdout
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/forever":
        while True:
            time.sleep(0.05)
    body = "pid={} import_pid={} version={} uid={}".format(
        os.getpid(), IMPORT_PID, VERSION, os.getuid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
