"""A plain Flask app for the framework tests (tests/frameworks.rs).

Served unchanged by rwsgi: `--module flask_app:app`.
"""

import hashlib

from flask import Flask, jsonify, redirect, request, Response

app = Flask(__name__)

FRAMEWORK = "flask"


@app.get("/hello")
def hello():
    return Response(f"hello from {FRAMEWORK}", mimetype="text/plain")


@app.post("/form")
def form():
    return jsonify(framework=FRAMEWORK, form=request.form.to_dict(flat=True))


@app.post("/json")
def json_echo():
    data = request.get_json()
    return jsonify(
        framework=FRAMEWORK,
        received=data,
        sum=sum(data["numbers"]),
        count=len(data["numbers"]),
    )


@app.post("/upload")
def upload():
    upload = request.files["file"]
    content = upload.read()
    return jsonify(
        framework=FRAMEWORK,
        field="file",
        filename=upload.filename,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/set-cookie")
def set_cookie():
    response = Response("cookies set", mimetype="text/plain")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "abc123", httponly=True)
    return response


@app.get("/cookies")
def cookies():
    return jsonify(framework=FRAMEWORK, cookies=request.cookies.to_dict(flat=True))


@app.get("/redirect")
def go_hello():
    return redirect("/hello", code=302)
