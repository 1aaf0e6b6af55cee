"""Keep WebRTC on 127.0.0.1: aioice skips loopback addresses unless told otherwise.

Imported by the test launchers, which run inside a network namespace that has only ``lo``.
"""

from __future__ import annotations

import aioice.ice


def offer_loopback_only() -> None:
    """Make aioice gather exactly one host candidate, 127.0.0.1."""

    def loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_addresses
