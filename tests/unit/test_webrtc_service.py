"""The WebRTC service's announced candidates: configured names resolved, else the interfaces."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streamhive.config import Config, WebRtcConfig
from streamhive.servers.webrtc import WebRtcService


def _service(**webrtc: object) -> WebRtcService:
    config = Config(webrtc=WebRtcConfig(**webrtc))  # type: ignore[arg-type]
    service = WebRtcService(SimpleNamespace(config=config))  # type: ignore[arg-type]
    service._loop = asyncio.get_running_loop()
    return service


async def test_public_ips_are_resolved_and_kept_in_order() -> None:
    service = _service(public_ips=["203.0.113.5", "localhost"])
    hosts = await service._candidate_hosts("0.0.0.0")
    assert hosts[0] == "203.0.113.5" and "127.0.0.1" in hosts


async def test_listen_host_or_every_interface_with_loopback_last() -> None:
    service = _service()
    assert await service._candidate_hosts("127.0.0.1") == ["127.0.0.1"]
    everywhere = await service._candidate_hosts("0.0.0.0")
    assert everywhere[-1] == "127.0.0.1" and all(":" not in h for h in everywhere)
    service.port = 8189
    service.candidate_hosts = everywhere
    assert {p for _h, _port, p in service.candidates()} == {"udp", "tcp"}
