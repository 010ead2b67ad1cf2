"""Behind PgBouncer's transaction pooling (the ``pgbouncer`` session: ``DATABASE_POOLING=
transaction``), a server-side cursor opened outside a transaction is lost as soon as another
client takes its server connection: what ``marketlink.W004`` asks for
(``DISABLE_SERVER_SIDE_CURSORS``) is what keeps ``.iterator()`` working there."""

from __future__ import annotations

import os

import psycopg
import pytest
from django.db import connection
from live_site import database_url

from marketlink.catalog.models import ServiceVariant
from marketlink.testing.factories import VariantFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("DATABASE_POOLING") != "transaction",
        reason="needs PgBouncer in transaction pooling mode: run by the pgbouncer nox session",
    ),
]


def read_while_another_client_takes_the_server(monkeypatch, disabled: bool) -> list[str]:
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", disabled)
    rows = ServiceVariant.objects.order_by("name").values_list("name", flat=True)
    names = rows.iterator(chunk_size=1)
    first = next(names)  # outside a transaction: each statement may get another server
    with psycopg.connect(database_url()) as other:  # another client, in a transaction,
        other.execute("SELECT 1")  # holds the server connection just used (LIFO)
        return [first, *names]


def test_server_side_cursors_are_lost_between_transactions(monkeypatch):
    for name in ("a", "b", "c"):
        VariantFactory(name=name)
    with pytest.raises(Exception, match=r"cursor .* does not exist"):
        read_while_another_client_takes_the_server(monkeypatch, disabled=False)
    connection.close()  # the failed read left this connection unusable

    assert read_while_another_client_takes_the_server(monkeypatch, disabled=True) == [
        "a",
        "b",
        "c",
    ]
