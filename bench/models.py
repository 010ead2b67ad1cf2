from django.db import models


class Hit(models.Model):
    """One row per request of the bare baseline view."""

    note = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"hit {self.pk}"
