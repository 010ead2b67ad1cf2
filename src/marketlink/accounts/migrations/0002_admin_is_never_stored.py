# ADMIN used to be stored the first time marketlink met a staff user, and the stored role kept
# granting it after the user lost staff status. ADMIN now comes from is_staff / is_superuser at
# each request, so every stored ADMIN becomes CUSTOMER: staff keep ADMIN through their flags,
# everyone else loses powers the host had already taken away (or never gave).

from django.conf import settings
from django.db import migrations, models


def stored_admins_become_customers(apps, schema_editor):
    account = apps.get_model("marketlink_accounts", "Account")
    account.objects.filter(role="ADMIN").update(role="CUSTOMER")


class Migration(migrations.Migration):
    dependencies = [
        ("marketlink_accounts", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Nothing to undo: which of the CUSTOMER rows were ADMIN is not kept.
        migrations.RunPython(stored_admins_become_customers, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="account",
            name="role",
            field=models.CharField(
                choices=[("CUSTOMER", "Customer"), ("VENDOR", "Vendor")],
                default="CUSTOMER",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["CUSTOMER", "VENDOR"])),
                name="marketlink_account_role_is_stored_role",
            ),
        ),
    ]
