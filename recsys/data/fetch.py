"""Downloading an image URL with a deadline, a size cap and host rules.

An image URL in an API request is chosen by the caller, so the download must not reach the
server's own network (loopback, private and link-local addresses: Redis, cloud metadata), must
not hold a worker longer than its deadline, and must not read more than its size cap. The host is
resolved once and the connection pinned to the checked address, so a second DNS answer cannot
swap it; every redirect is checked the same way.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

__all__ = ["FetchPolicy", "FetchError", "fetch"]

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 << 10


class FetchError(ValueError):
    """The URL was refused or could not be downloaded; the message says why."""


@dataclass(frozen=True)
class FetchPolicy:
    """How an image URL may be fetched.

    Attributes:
        timeout_s: the whole download, redirects included, ends by then.
        max_bytes: a larger body is refused (read no further than this).
        allow_private: reach loopback, private, link-local and other non-global addresses.
        max_redirects: redirects followed before giving up.
    """

    timeout_s: float = 10.0
    max_bytes: int = 20 << 20
    allow_private: bool = False
    max_redirects: int = 3


def fetch(url: str, policy: FetchPolicy) -> bytes:
    """The body of ``url`` (http or https), within ``policy``.

    Raises:
        FetchError: a refused scheme or address, an HTTP error status, too many redirects, a body
            over ``max_bytes``, the deadline passed, or a network error.
    """
    deadline = time.monotonic() + policy.timeout_s
    try:
        for _ in range(policy.max_redirects + 1):
            status, location, body = _get(url, policy, deadline)
            if status not in _REDIRECTS:
                return body
            if not location:
                raise FetchError(f"{_short(url)} redirected without a Location")
            url = urljoin(url, location)
    except TimeoutError:
        raise FetchError(f"{_short(url)} did not answer within {policy.timeout_s:g} s") from None
    raise FetchError(f"more than {policy.max_redirects} redirects")


def _get(url: str, policy: FetchPolicy, deadline: float) -> tuple[int, str | None, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"only http and https image URLs are fetched (got {_short(url)})")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _checked_address(parts.hostname, port, policy.allow_private)
    timeout = _remaining(deadline)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedTLS(parts.hostname, port, address, timeout)
    else:
        conn = _Pinned(parts.hostname, port, address, timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", path, headers={"Accept": "image/*", "User-Agent": "recsys-image-fetch"})
        sock = conn.sock  # the response keeps reading from it after the connection lets it go
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            return response.status, response.getheader("Location"), b""
        if response.status != 200:
            raise FetchError(f"{_short(url)} answered HTTP {response.status}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > policy.max_bytes:
            raise FetchError(f"the image is {int(declared):,} bytes; the limit is {policy.max_bytes:,}")
        body = bytearray()
        while True:
            sock.settimeout(_remaining(deadline))
            chunk = response.read1(_CHUNK)
            if not chunk:
                return response.status, None, bytes(body)
            body += chunk
            if len(body) > policy.max_bytes:
                raise FetchError(f"the image is over {policy.max_bytes:,} bytes, the limit")
    except TimeoutError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{_short(url)} could not be fetched ({exc})") from None
    finally:
        conn.close()


def _checked_address(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"the image host {host!r} cannot be resolved ({exc})") from None
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            ip = getattr(ip, "ipv4_mapped", None) or ip
            if not ip.is_global or ip.is_multicast:
                raise FetchError(f"the image host {host!r} is a loopback, private or link-local "
                                 f"address ({ip}); such URLs are refused (setting "
                                 "images.fetch_private)")
    return addresses[0]


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _short(url: str) -> str:
    return repr(url if len(url) <= 120 else url[:117] + "...")


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to an address already checked, with the URL's host in the headers."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
