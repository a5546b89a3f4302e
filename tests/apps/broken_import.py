"""An app module that fails at import time (for the startup-failure test)."""

import this_module_does_not_exist  # noqa: F401

application = None
