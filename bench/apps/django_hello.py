"""Django hello world in one file: settings, one URL, one view.

No database, no templates, the stock security and common middleware.
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="rwsgi-bench-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ],
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request):
    """The benchmarked view."""
    return HttpResponse("Hello, World!", content_type="text/plain")


urlpatterns = [path("", hello)]

application = get_wsgi_application()
