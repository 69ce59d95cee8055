"""CIDR lists for IP allow/deny rules and per-user source networks.

Lists are parsed once at startup (a bad entry is a config error, not a silent hole) and a client
address that does not parse is in no network: a deny list then does not catch it, but an allow
list refuses it, which is the side to fail on. IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``,
what a dual-stack socket reports for IPv4 clients) are matched as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["Network", "client_key", "in_networks", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8"``, ``"::1"``, ``"192.168.1.7"``...; host bits set are tolerated.

    Raises ValueError naming the entry that does not parse.
    """
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r}") from exc
    return tuple(networks)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(ip: str, networks: Iterable[Network]) -> bool:
    """Whether the address ``ip`` (no port) is inside any of ``networks``."""
    address = _address(ip)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


def client_key(ip: str) -> str:
    """The unit that rate and failure limits count: an IPv4 address, or an IPv6 /64.

    One IPv6 client usually owns a whole /64 and can pick a fresh address per attempt, so
    counting single IPv6 addresses would not limit it at all.
    """
    address = _address(ip)
    if address is None:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
