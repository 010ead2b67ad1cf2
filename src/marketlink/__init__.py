"""marketlink: reusable Django apps for service marketplaces."""

__version__ = "0.1.0"
