"""The baseline: the cheapest useful Django write, one INSERT and a small JSON answer."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.models import Hit


@csrf_exempt
@require_POST
def insert(request: HttpRequest) -> JsonResponse:
    hit = Hit.objects.create(note="bench")
    return JsonResponse({"success": True, "message": "", "data": {"id": hit.pk}}, status=201)
