"""The migration that stops storing ADMIN, run over rows the old behaviour left."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from marketlink.accounts.models import Account

BEFORE = [("marketlink_accounts", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_stored_admin_roles_become_customer_and_staff_stay_admin():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old_user = old_apps.get_model(settings.AUTH_USER_MODEL)
    old_account = old_apps.get_model("marketlink_accounts", "Account")
    email_field = "email"
    username_field = "username" if settings.AUTH_USER_MODEL == "auth.User" else "email"
    rows = {}
    for name, role, is_staff in [
        ("was-staff", "ADMIN", False),
        ("still-staff", "ADMIN", True),
        ("vendor", "VENDOR", False),
    ]:
        email = f"{name}@example.com"
        user = old_user.objects.create(
            **{email_field: email, username_field: email}, is_staff=is_staff
        )
        rows[name] = old_account.objects.create(user=user, role=role, email=email).pk

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    accounts = {name: Account.objects.get(pk=pk) for name, pk in rows.items()}
    assert {name: a.role for name, a in accounts.items()} == {
        "was-staff": "CUSTOMER",
        "still-staff": "CUSTOMER",
        "vendor": "VENDOR",
    }
    assert accounts["was-staff"].effective_role == "CUSTOMER"
    assert accounts["still-staff"].effective_role == "ADMIN"
