"""marketlink's load benchmark (``python bench/run.py``); see ``bench/README.md``.

The package is also a tiny Django app holding the baseline: a bare view that does one INSERT,
served by the same gunicorn, database and client as the booking endpoint it is compared with.
"""
