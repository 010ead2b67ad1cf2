"""Fill the catalog's new units-made-available ledger from what the orders say.

Lives in the orders app because the figure is counted from orders, and catalog sits below
orders: every unit on sale, held by a live order, or used by an order that was once completed.
"""

from django.db import migrations
from django.db.models import Count, IntegerField, OuterRef, Subquery

HOLDS_STOCK = ("pending", "paid", "processing")


def backfill(apps, schema_editor):  # type: ignore[no-untyped-def]
    variant_model = apps.get_model("marketlink_catalog", "ServiceVariant")
    order_model = apps.get_model("marketlink_orders", "RepairOrder")
    orders = order_model.objects.filter(variant=OuterRef("pk")).order_by().values("variant")
    count = Count("id", distinct=True)
    variants = variant_model.objects.annotate(
        held=Subquery(
            orders.filter(status__in=HOLDS_STOCK).annotate(n=count).values("n"),
            output_field=IntegerField(),
        ),
        used=Subquery(
            orders.filter(history__to_status="completed").annotate(n=count).values("n"),
            output_field=IntegerField(),
        ),
    )
    for variant in variants.iterator():
        variant.units_made_available = variant.stock + (variant.held or 0) + (variant.used or 0)
        variant.save(update_fields=["units_made_available"])


class Migration(migrations.Migration):
    dependencies = [
        ("marketlink_catalog", "0002_variant_units_made_available"),
        ("marketlink_orders", "0001_initial"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
