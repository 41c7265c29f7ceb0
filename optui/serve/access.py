"""Who may open a session: the token, the Origin of a websocket, and where the server listens."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

TOKEN_PARAM = "token"


def new_token() -> str:
    """A random token, as Jupyter makes one: 48 hex characters."""
    return secrets.token_hex(24)


def token_matches(given: str | None, token: str) -> bool:
    """Compared in constant time, so the answer's timing says nothing about the token."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """A browser names the page that opened a websocket in Origin: only a page of this server
    (same host and port as the request's Host) may open one. A client that sends no Origin is no
    browser page, and still needs the token."""
    if origin is None:
        return True
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def is_loopback(host: str) -> bool:
    """Whether host is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """host as a URL writes it (an IPv6 address in brackets)."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host
