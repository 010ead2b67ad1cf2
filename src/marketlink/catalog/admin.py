from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from marketlink.catalog.models import Service, ServiceVariant
from marketlink.catalog.services import check_price, variant_update
from marketlink.exceptions import Conflict, InvalidInput


class VariantForm(forms.ModelForm):
    """The stock staff saw travels with the form (a hidden initial value), so a save applies the
    change *they* made, under the variant's row lock, instead of writing back a count that
    bookings have changed since the page was opened."""

    class Meta:
        model = ServiceVariant
        fields = ("service", "name", "price", "estimated_minutes", "stock", "archived_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "stock" in self.fields:
            self.fields["stock"].show_hidden_initial = True

    def clean_price(self) -> Decimal | None:
        """The API's price rule, checked here so staff get a form error rather than a 500 (on
        edit) or a variant nobody can pay for (on add). An unchanged price is left alone, as the
        API does: a variant priced before the currency changed can still be renamed."""
        price: Decimal | None = self.cleaned_data.get("price")
        if price is not None and "price" in self.changed_data:
            try:
                check_price(price)
            except InvalidInput as exc:
                raise ValidationError(exc.message) from None
        return price

    def stock_seen(self) -> int | None:
        field = self.fields["stock"]
        raw = field.hidden_widget().value_from_datadict(
            self.data, self.files, self.add_initial_prefix("stock")
        )
        try:
            value = field.to_python(raw)
        except ValidationError:
            return None
        return None if value is None else int(value)


def _save_variant(request: HttpRequest, form: VariantForm, variant: ServiceVariant) -> None:
    """Save an edited variant: the fields staff changed, stock as the difference they made."""
    if variant._state.adding:
        variant.save()
        return
    changed = [name for name in form.changed_data if name in form.cleaned_data]
    changes = {name: form.cleaned_data[name] for name in changed if name != "stock"}
    adjustment = None
    if "stock" in changed:
        seen = form.stock_seen()
        if seen is None:
            changes["stock"] = form.cleaned_data["stock"]
        else:
            adjustment = form.cleaned_data["stock"] - seen
    try:
        variant_update(variant=variant, stock_adjustment=adjustment, **changes)
    except Conflict as exc:
        messages.error(request, f"{variant}: not saved. {exc.message}")


class ServiceVariantInline(admin.TabularInline):
    model = ServiceVariant
    form = VariantForm
    extra = 0
    fields = ("name", "price", "estimated_minutes", "stock", "archived_at")


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "vendor", "archived_at", "created_at")
    list_filter = ("archived_at", "created_at")
    search_fields = ("name", "description", "vendor__business_name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    list_select_related = ("vendor",)
    inlines = [ServiceVariantInline]

    def save_formset(self, request, form, formset, change):  # type: ignore[no-untyped-def]
        if formset.model is not ServiceVariant:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # runs the deletions and collects the changed forms
        for obj in formset.deleted_objects:
            obj.delete()
        for inline_form in formset.forms:
            if inline_form in formset.deleted_forms or not inline_form.has_changed():
                continue
            _save_variant(request, inline_form, inline_form.instance)
        return None


@admin.register(ServiceVariant)
class ServiceVariantAdmin(admin.ModelAdmin):
    form = VariantForm
    list_display = ("name", "service", "price", "stock", "estimated_minutes", "archived_at")
    list_filter = ("archived_at",)
    search_fields = ("name", "service__name", "service__vendor__business_name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    list_select_related = ("service",)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        _save_variant(request, form, obj)
