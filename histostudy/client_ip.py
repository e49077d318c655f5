"""The client's address as login throttling (django-axes) counts it.

With AXES_PROXY_COUNT = N reverse proxies in front of the application, each appends to
X-Forwarded-For the address it received the request from, so the client is the N-th entry
from the right; anything to its left was written by the client and may be forged. With N = 0
(no proxy) the header is ignored and the connection's own address counts. A header with fewer
than N entries (a request that bypassed a proxy) or an entry that is not an IP address falls
back to the connection's address.

django-ipware, the helper axes would otherwise use, was tried (version 8.0.0 with
python-ipware 4.1.1): with a proxy count of 0 it still takes the address from
X-Forwarded-For, so a client without a proxy picks its own address per attempt, and with a
count of N it returns no address at all unless the header has exactly N + 1 entries, which a
client adding one entry breaks. Hence this function, which Werkzeug's ProxyFix also follows.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    proxies = int(getattr(settings, "AXES_IPWARE_PROXY_COUNT", 0) or 0)
    if proxies <= 0:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    chain = [part for part in chain if part]
    if len(chain) < proxies:
        return remote
    candidate = chain[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
