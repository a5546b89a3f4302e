"""Flask hello world: one route returning a short text body."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    """The benchmarked view."""
    return "Hello, World!"


application = app
