"""The example site with the periodic reconcile due every minute, as a host would set it: the
settings of the consumer in ``test_periodic_jobs``."""

from example_project.settings import *  # noqa: F403
from example_project.settings import MARKETLINK as SITE_MARKETLINK

MARKETLINK = {**SITE_MARKETLINK, "PERIODIC_RECONCILE_MINUTES": 1}
