"""Outbound requests (SLA webhooks, e-mail): where the gateway may send them.

- A host the operator names is allowed, wherever it resolves: the names in BATCHGATE_SLA_WEBHOOK_HOSTS
  (exact, or `*.domain`) and the configured mail host.
- With a host list set, no other host is allowed. With it empty, any host whose every address is public
  is allowed, and nothing else: never loopback, link-local (cloud metadata at 169.254.169.254 and its
  IPv6 forms), private, shared (100.64.0.0/10), multicast, reserved or unspecified addresses, nor IPv6
  addresses that embed one (IPv4-mapped, 6to4, Teredo, NAT64).
- The check runs twice: on the URL when it is given (a literal address in any form the C library reads,
  such as `0x7f.1` or `2130706433`, and names that only ever mean this machine or a cloud's metadata
  service), and on the addresses the connection really uses, at send time (`OutboundResolver`), so a
  name that resolves somewhere else than it did (or than it says) is caught.
- Redirects are never followed (the caller passes allow_redirects=False).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that mean this machine or a cloud's instance metadata whatever DNS says (refused unless named).
LOCAL_NAMES = ("localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
               "instance-data.ec2.internal")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


class OutboundRefused(OSError):
    """A destination the outbound rules do not allow (raised where the connection would be made)."""


def public(address: IPAddress) -> bool:
    """Whether an address is on the public internet, looking through IPv6 forms that embed IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return public(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any form the C library accepts (127.1, 0x7f.1, 2130706433)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def normalize(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


class OutboundRule:
    """The destinations outbound requests may reach: `hosts` are the operator's list (exact names or
    `*.domain`); `named` are hosts allowed by configuration as well (the mail host), outside any list."""

    def __init__(self, hosts: Sequence[str] = (), named: Sequence[str | None] = ()) -> None:
        listed = [normalize(h) for h in hosts if h.strip()]
        self._exact = {h for h in listed if not h.startswith("*.")}
        self._suffixes = tuple(h[1:] for h in listed if h.startswith("*."))  # ".example.com"
        self._listed = bool(listed)
        self._named = {normalize(h) for h in named if h}

    def by_name(self, host: str) -> bool:
        """Allowed by name: on the operator's list, or configured (the mail host)."""
        host = normalize(host)
        return host in self._named or host in self._exact or host.endswith(self._suffixes)

    def problem(self, url: str, field: str = "webhook") -> str | None:
        """None if the URL may be called, else what is wrong with it (the name check; the addresses are
        checked again when it is called)."""
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            return f"{field}: must not contain spaces or control characters"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - a bad port raises here
        except ValueError:
            return f"{field}: {url!r} is not a valid URL"
        if parts.scheme not in ("http", "https") or not host:
            return f"{field}: {url!r} is not an http(s) URL"
        if parts.username is not None or parts.password is not None:
            return f"{field}: credentials in the URL are not allowed"
        return self.host_problem(host, field)

    def host_problem(self, host: str, field: str = "webhook") -> str | None:
        host = normalize(host)
        if self.by_name(host):
            return None
        if self._listed:
            return f"{field}: host {host!r} is not among the gateway's allowed webhook hosts"
        address = literal_address(host)
        if address is not None and not public(address):
            return (f"{field}: host {host!r} is {address}, which is not a public address; an admin may allow it "
                    "by name (BATCHGATE_SLA_WEBHOOK_HOSTS)")
        if host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES):
            return (f"{field}: host {host!r} names this machine or a cloud metadata service; an admin may allow "
                    "it by name (BATCHGATE_SLA_WEBHOOK_HOSTS)")
        return None

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        return self.by_name(host) or (not self._listed and public(address))


class OutboundResolver(AbstractResolver):
    """Resolves a host for an outbound connection and keeps only the addresses the rule allows for it:
    the check is on the address the connection will use, at the moment it is made."""

    def __init__(self, rule: OutboundRule, inner: AbstractResolver | None = None) -> None:
        self._rule = rule
        self._inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._rule.address_allowed(host, ipaddress.ip_address(r["host"]))]
        if not allowed:
            addresses = ", ".join(sorted({str(r["host"]) for r in found}))
            raise OutboundRefused(f"{host} resolves to {addresses}, which the outbound rules do not allow "
                                  "(not a public address, nor a host allowed by name)")
        return allowed

    async def close(self) -> None:
        await self._inner.close()

