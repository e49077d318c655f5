"""What every response under /api/ shares, whatever produced it: never cached (answers,
practice feedback and answer keys are private to one account), and errors as JSON in DRF's
shape, including those DRF never sees (an unknown URL, a CSRF failure, a server error)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control

API_PREFIX = "/api/"
DETAILS = {404: "Not found.", 500: "Server error."}


class ApiResponses:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX):
            return response
        json = response.get("Content-Type", "").startswith("application/json")
        if response.status_code >= 400 and not json:
            detail = DETAILS.get(response.status_code, response.reason_phrase)
            replaced = JsonResponse({"detail": detail}, status=response.status_code)
            for header, value in response.items():  # security headers, Allow, Retry-After...
                if header.lower() not in ("content-type", "content-length"):
                    replaced[header] = value
            replaced.cookies = response.cookies
            response = replaced
        patch_cache_control(response, private=True, no_store=True)
        return response
