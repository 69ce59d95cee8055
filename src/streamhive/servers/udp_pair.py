"""An RTP/RTCP pair of UDP sockets: the server's shared pair and each UDP pull's own.

Clients assume RTCP = RTP + 1 on an even RTP port, so port 0 cannot simply be left to the
kernel twice: a free even port is probed and both are bound, retrying when another socket wins.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

Pair = tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]


async def bind_pair(
    host: str, protocol: Callable[[bool], asyncio.DatagramProtocol], rtp_port: int = 0, rtcp_port: int = 0
) -> Pair:
    """Bind (RTP, RTCP) sockets on ``host``; ``protocol(is_rtcp)`` makes each one's protocol.

    ``rtp_port`` 0 picks a free even/odd pair; otherwise exactly the given ports (OSError if taken).
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100 if rtp_port == 0 else 1):
        if rtp_port == 0:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((host, 0))
                rtp = probe.getsockname()[1] & ~1
            rtcp = rtp + 1
        else:
            rtp, rtcp = rtp_port, rtcp_port
        bound: list[asyncio.DatagramTransport] = []
        try:
            for port, is_rtcp in ((rtp, False), (rtcp, True)):
                transport, _ = await loop.create_datagram_endpoint(
                    lambda is_rtcp=is_rtcp: protocol(is_rtcp),  # type: ignore[misc]
                    local_addr=(host, port),
                )
                bound.append(transport)
            return bound[0], bound[1]
        except OSError:
            for transport in bound:
                transport.close()
            if rtp_port != 0:
                raise
    raise OSError("no free UDP port pair for RTP/RTCP")
