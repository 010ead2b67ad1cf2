"""The example site with Django's stock ``auth.User`` (username login) instead of a custom user.

The test-suite runs against both, because marketlink must work whatever user model a host has.
"""

from example_project.settings import *  # noqa: F403

AUTH_USER_MODEL = "auth.User"
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "shop"]  # noqa: F405
