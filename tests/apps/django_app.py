"""A single-file Django project for the framework tests
(tests/frameworks.rs): settings, URLs and views in one module, no database.

Served unchanged by rwsgi: `--module django_app:application`.
"""

import hashlib
import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="rwsgi-tests-only-not-a-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    APPEND_SLASH=False,
    USE_TZ=True,
    # With DEBUG off Django logs nothing by default; a failing test should
    # show the traceback in the server's log.
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

FRAMEWORK = "django"


@require_GET
def hello(request):
    return HttpResponse(f"hello from {FRAMEWORK}", content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_POST
def form(request):
    return JsonResponse({"framework": FRAMEWORK, "form": request.POST.dict()})


@csrf_exempt
@require_POST
def json_echo(request):
    data = json.loads(request.body)
    return JsonResponse(
        {
            "framework": FRAMEWORK,
            "received": data,
            "sum": sum(data["numbers"]),
            "count": len(data["numbers"]),
        }
    )


@csrf_exempt
@require_POST
def upload(request):
    upload = request.FILES["file"]
    content = upload.read()
    return JsonResponse(
        {
            "framework": FRAMEWORK,
            "field": "file",
            "filename": upload.name,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "note": request.POST.get("note"),
        }
    )


@require_GET
def set_cookie(request):
    response = HttpResponse("cookies set", content_type="text/plain; charset=utf-8")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "abc123", httponly=True)
    return response


@require_GET
def cookies(request):
    return JsonResponse({"framework": FRAMEWORK, "cookies": dict(request.COOKIES)})


@require_GET
def go_hello(request):
    return HttpResponseRedirect("/hello")


urlpatterns = [
    path("hello", hello),
    path("form", form),
    path("json", json_echo),
    path("upload", upload),
    path("set-cookie", set_cookie),
    path("cookies", cookies),
    path("redirect", go_hello),
]

application = get_wsgi_application()
