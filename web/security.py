"""Who may talk to the server: security headers, the API token, trusted Host names.

Rules (``qa serve`` enforces the first two before it binds a socket):

- On a loopback address the API is open to local programs, unless a token is set.
- Anywhere else a token is required (``--token T`` or ``QA_TOKEN``), or ``--insecure``
  to serve without one on purpose (a warning is printed).
- With a token, every ``/api/*`` call needs ``Authorization: Bearer T`` (compared in
  constant time); the page and ``/openapi.json`` stay public, so the page can ask for it.
- Without a token, only requests addressed to a loopback name (``localhost``,
  ``127.0.0.1``, ``[::1]``) are answered, so a web page on another origin cannot reach
  the API through DNS rebinding (its requests carry its own host name).
"""

from __future__ import annotations

import hmac
import ipaddress
import re

# Sent with every response, errors included (and with waitress's own errors, see server.py).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# What a token may look like: it travels in an HTTP header, so visible ASCII only.
_TOKEN = re.compile(r"[\x21-\x7e]+")
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); names are not resolved."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_problem(token: str) -> str | None:
    """Why a token cannot be used (it must fit in an Authorization header), or None."""
    if not token:
        return "the token is empty"
    if not _TOKEN.fullmatch(token):
        return "the token may hold only visible ASCII characters (no spaces)"
    return None


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries exactly this bearer token (constant time)."""
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("utf-8"))


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:80' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
