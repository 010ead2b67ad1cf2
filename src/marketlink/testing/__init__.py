"""Test helpers a host project can reuse: factories, pytest fixtures and a Stripe stand-in.

Enable the fixtures in a host's ``conftest.py`` with
``pytest_plugins = ["marketlink.testing.fixtures"]``; install ``marketlink[testing]`` for
factory-boy.
"""
