"""Flask app whose view sleeps 200 ms, like a call to a slow backend: it
measures how many requests a server keeps in flight on its threads."""

import time

from flask import Flask

app = Flask(__name__)
DELAY = 0.2


@app.route("/")
def slow():
    """Sleeps DELAY seconds (releasing the GIL), then answers."""
    time.sleep(DELAY)
    return "Hello, World!"


application = app
