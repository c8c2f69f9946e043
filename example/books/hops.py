"""COUNT_HOPS mode only: the thread hops counted since the last reset, as JSON."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .apps import HOPS


@csrf_exempt
def hops(request: HttpRequest) -> JsonResponse:
    """GET: the counts by function; POST: reset them."""
    if request.method == "POST":
        HOPS.clear()
    return JsonResponse(dict(HOPS))
