"""One refund row per provider refund: a payment may have several, each with its own amount and
status. Rows carried over: a succeeded refund gets ``succeeded_at`` (its last change), an asked
one ``first_asked_at`` (its creation, the earliest its key can date from), and each refunded
order's ``amount_refunded`` its total (before, only a whole refund of its own payment made an
order refunded)."""

from django.db import migrations, models
from django.db.models import F


def carry_over(apps, schema_editor):
    Refund = apps.get_model("marketlink_payments", "Refund")
    RepairOrder = apps.get_model("marketlink_orders", "RepairOrder")
    Refund.objects.filter(status="succeeded").update(succeeded_at=F("updated_at"))
    Refund.objects.filter(attempts__gt=0).update(first_asked_at=F("created_at"))
    RepairOrder.objects.filter(status="refunded").update(amount_refunded=F("total_amount"))


class Migration(migrations.Migration):

    dependencies = [
        ("marketlink_payments", "0005_invoice_requeued_at"),
        ("marketlink_orders", "0005_order_amount_refunded"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="first_asked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="refund",
            name="succeeded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="refund",
            name="needs_attention",
            field=models.BooleanField(
                default=False,
                help_text="Could not be made, failed, partial or in another currency: for staff.",
            ),
        ),
        migrations.AlterField(
            model_name="refund",
            name="payment_intent_id",
            field=models.CharField(db_index=True, max_length=255),
        ),
        migrations.RunPython(carry_over, migrations.RunPython.noop),
    ]
