"""Addresses a listener is given: ``host:port`` on TCP, octal socket modes, and what loopback is.

Shared by the configuration, which checks the values when it loads, and the listeners, which bind them.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ListenError", "is_loopback", "parse_file_mode", "parse_tcp"]


class ListenError(Exception):
    """The address cannot be used; the message says why and what to do."""


def parse_file_mode(text: str) -> int:
    """``"0600"`` as permission bits; a ValueError names the text when it is not an octal mode."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{text!r} is not an octal file mode like 0600 or 0660")
    return mode


def parse_tcp(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (loopback) or ``[v6]:port``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenError(f"invalid TCP address {address!r}: expected host:port")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
