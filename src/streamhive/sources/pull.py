"""Pulling one stream from another server into a path: RTSP/RTSPS cameras and RTMP servers.

A pull runs until its connection fails or is cancelled; reconnecting, on-demand start and idle
stop are the SourceManager's job. Each pull publishes into the hub like any publisher, as a
trusted session (the operator configured the source), and reports when it is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..formats.sdp import SdpError, parse_sdp
from ..hub import Hub, Session, Stream
from ..protocols.rtmp import client as rc
from ..protocols.rtmp.connection import MediaReceived
from ..protocols.rtmp.errors import RtmpError
from ..protocols.rtsp.headers import parse_rtp_info, parse_session, parse_transports
from ..protocols.rtsp.url import resolve_control
from ..servers.flv_ingest import FlvIngest
from ..servers.rtp_ingest import RECEIVER_SSRC, RtpIngest, describe_medias, ingest_medias
from ..servers.udp_pair import bind_pair
from .rtsp_client import RtspClient, RtspClientError

log = logging.getLogger("streamhive.source")

#: Seconds without any RTP before a source counts as dead (cameras send 25+ packets a second).
NO_DATA_TIMEOUT = 10.0
#: Seconds "auto" waits for the first UDP packet before it retries over TCP (firewalls, NAT).
UDP_FALLBACK_AFTER = 3.0
RR_INTERVAL = 5.0


class SourceError(Exception):
    """Why a pull stopped: the text goes to the log and the API."""


class UdpBlocked(SourceError):
    """No packet came over UDP: try TCP."""


@dataclass(slots=True)
class SourceUrl:
    scheme: str
    host: str
    port: int
    path: str  # with query, as sent in requests
    user: str | None
    password: str | None
    public: str  # the URL without credentials, for logs and requests

    @classmethod
    def parse(cls, url: str) -> SourceUrl:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        default = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443}.get(scheme)
        if default is None or not parts.hostname:
            raise SourceError(f"unsupported source URL {url!r}")
        host = parts.hostname
        port = parts.port or default
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(scheme, host, port, path, user, password, f"{scheme}://{netloc}{path}")


class Pull:
    """Base of the pulls: ``run`` publishes into ``path`` and returns/raises when the source ends."""

    protocol = "pull"

    def __init__(self, hub: Hub, path: str, url: SourceUrl, on_live: Callable[[Stream], None]) -> None:
        self.hub = hub
        self.path = path
        self.url = url
        self.on_live = on_live
        self.session = Session(self.protocol, f"{url.host}:{url.port}")
        self.stream: Stream | None = None
        self.live = False

    def _check_live(self, stream: Stream) -> None:
        """Tell the manager once the stream has tracks and media (on-demand readers wait for it)."""
        if not self.live and stream.tracks and stream.frames_in:
            self.live = True
            self.on_live(stream)

    async def _publish(self) -> Stream:
        self.stream = await self.hub.publish(self.path, self.session, trusted=True)
        return self.stream

    def unpublish(self, grace: float) -> None:
        if self.stream is not None:
            self.hub.unpublish(self.stream, self.session, grace)
            self.stream = None


class RtspPull(Pull):
    protocol = "rtsp-source"

    def __init__(
        self, hub: Hub, path: str, url: SourceUrl, on_live: Callable[[Stream], None], transport: str
    ) -> None:
        super().__init__(hub, path, url, on_live)
        self.transport = transport  # "udp" | "tcp"
        self.ingest: RtpIngest | None = None
        self.channels: dict[int, tuple[int, bool]] = {}
        self.last_packet = 0.0
        self.packets = 0
        self.peer_ip: str | None = None  # UDP media is accepted from the camera's address only
        self.rtcp_sockets: dict[int, asyncio.DatagramTransport] = {}  # media -> our RTCP socket
        self.loop = asyncio.get_running_loop()

    def _interleaved(self, channel: int, data: bytes) -> None:
        target = self.channels.get(channel)
        if target is not None:
            self._media(target[0], data, target[1])

    def _media(self, media: int, data: bytes, rtcp: bool) -> None:
        ingest = self.ingest
        if ingest is None:
            return
        self.session.bytes_in += len(data)
        if rtcp:
            ingest.rtcp(media, data, self.loop.time())
            return
        self.packets += 1
        self.last_packet = self.loop.time()
        ingest.stream.bytes_in += len(data)
        ingest.rtp(media, data, self.last_packet)

    async def run(self) -> None:
        url = self.url
        client = await RtspClient.connect(
            url.host, url.port, url.scheme == "rtsps", self._interleaved, url.user, url.password
        )
        peer = client.transport.get_extra_info("peername") if client.transport else None
        self.peer_ip = peer[0] if peer else None
        sockets: list[asyncio.DatagramTransport] = []
        try:
            await self._session(client, sockets)
        finally:
            with contextlib.suppress(RtspClientError, Exception):
                if client.session is not None and not client.closed.done():
                    await client.request("TEARDOWN", url.public, timeout=1)
            client.close()
            for sock in sockets:
                sock.close()

    async def _session(self, client: RtspClient, sockets: list[asyncio.DatagramTransport]) -> None:
        url = self.url
        answer = await client.request("DESCRIBE", url.public, [("Accept", "application/sdp")])
        if answer.status != 200:
            raise SourceError(f"DESCRIBE answered {answer.status} {answer.reason}")
        try:
            sdp = parse_sdp(answer.body)
        except SdpError as exc:
            raise SourceError(f"bad SDP from the source: {exc}") from None
        base = answer.headers.get("Content-Base") or answer.headers.get("Content-Location") or url.public
        medias = ingest_medias(sdp)
        if not any(medias):
            raise SourceError(f"no media this server can take ({describe_medias(medias)})")
        timeout = 60.0
        udp_targets: dict[int, tuple[str, int]] = {}
        controls: dict[int, str] = {}
        for i, media in enumerate(medias):
            if media is None:
                continue
            control = resolve_control(base, sdp.media[i].control or "")
            controls[i] = control
            if self.transport == "tcp":
                offer = f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"
            else:
                ports = await self._udp_pair(i, sockets)
                offer = f"RTP/AVP;unicast;client_port={ports}-{ports + 1}"
            reply = await client.request("SETUP", control, [("Transport", offer)])
            if reply.status == 461 and self.transport == "udp":
                raise UdpBlocked("the source refused RTP over UDP (461 Unsupported Transport)")
            if reply.status != 200:
                raise SourceError(f"SETUP of {control} answered {reply.status} {reply.reason}")
            session = reply.headers.get("Session")
            if session is not None and client.session is None:
                client.session, session_timeout = parse_session(session)
                timeout = float(session_timeout or 60)
            chosen = parse_transports(reply.headers.get("Transport") or offer)[0]
            if chosen.lower == "TCP":
                first = chosen.interleaved[0] if chosen.interleaved else 2 * i
                self.channels[first], self.channels[first + 1] = (i, False), (i, True)
            elif chosen.server_port:
                udp_targets[i] = (self.peer_ip or url.host, chosen.server_port[1])
        stream = await self._publish()
        self.ingest = RtpIngest(stream, medias, reorder=self.transport == "udp")
        session_control = sdp.control if sdp.control and sdp.control != "*" else ""
        play_url = resolve_control(base, session_control) if session_control else base
        reply = await client.request("PLAY", play_url, [("Range", "npt=0.000-")])
        if reply.status != 200:
            raise SourceError(f"PLAY answered {reply.status} {reply.reason}")
        self._rtp_info(reply.headers.get("RTP-Info"), controls)
        log.info(
            "source %s: playing %s over %s (%s)",
            self.path,
            url.public,
            self.transport.upper(),
            describe_medias(medias),
        )
        self.last_packet = started = self.loop.time()
        next_keepalive = started + timeout / 2
        next_report = started + 1
        while True:
            done, _ = await asyncio.wait({client.closed}, timeout=0.5)
            if done:
                raise SourceError(client.closed.result())
            now = self.loop.time()
            self._check_live(stream)
            if self.packets == 0 and self.transport == "udp" and now - started > UDP_FALLBACK_AFTER:
                raise UdpBlocked(f"no RTP over UDP within {UDP_FALLBACK_AFTER:g}s")
            if now - self.last_packet > NO_DATA_TIMEOUT:
                raise SourceError(f"no RTP for {NO_DATA_TIMEOUT:g}s")
            if now >= next_report:
                next_report = now + RR_INTERVAL
                self._reports(client, udp_targets)
            if now >= next_keepalive:
                next_keepalive = now + timeout / 2
                await client.request("GET_PARAMETER", base)

    async def _udp_pair(self, media: int, sockets: list[asyncio.DatagramTransport]) -> int:
        """Bind an even/odd pair of local UDP ports for one media; returns the RTP port."""
        host = "::" if ":" in (self.peer_ip or self.url.host) else "0.0.0.0"
        try:
            rtp, rtcp = await bind_pair(host, lambda is_rtcp: _PullUdp(self, media, is_rtcp))
        except OSError as exc:
            raise SourceError(str(exc)) from None
        sockets.extend((rtp, rtcp))
        self.rtcp_sockets[media] = rtcp
        return int(rtp.get_extra_info("sockname")[1])

    def _rtp_info(self, value: str | None, controls: dict[int, str]) -> None:
        if not value or self.ingest is None:
            return
        with contextlib.suppress(ValueError):
            for entry in parse_rtp_info(value):
                for media, control in controls.items():
                    same = entry.url == control or control.endswith(entry.url) or entry.url.endswith(control)
                    if entry.url and same and entry.rtptime is not None:
                        self.ingest.sync.rtp_info(media, entry.rtptime)

    def _reports(self, client: RtspClient, udp: dict[int, tuple[str, int]]) -> None:
        ingest = self.ingest
        if ingest is None:
            return
        for media in ingest.receivers:
            report = ingest.receiver_report(media, RECEIVER_SSRC, self.loop.time())
            if report is None:
                continue
            if self.transport == "tcp":
                channel = next((c for c, (m, rtcp) in self.channels.items() if m == media and rtcp), None)
                if channel is not None:
                    client.send_interleaved(channel, report)
            elif media in udp and media in self.rtcp_sockets:
                self.rtcp_sockets[media].sendto(report, udp[media])


class _PullUdp(asyncio.DatagramProtocol):
    def __init__(self, pull: RtspPull, media: int, rtcp: bool) -> None:
        self.pull, self.media, self.rtcp = pull, media, rtcp

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if addr[0] == self.pull.peer_ip:  # anyone can send to our ports: only the camera counts
            self.pull._media(self.media, data, self.rtcp)


class RtmpPull(Pull):
    protocol = "rtmp-source"

    async def run(self) -> None:
        url = self.url
        app, _, name = url.path.lstrip("/").partition("/")
        if not name:
            raise SourceError("an rtmp:// source needs /APP/STREAM in its URL")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port, ssl=url.scheme == "rtmps" or None), 10
            )
        except (OSError, TimeoutError) as exc:
            raise SourceError(f"cannot connect to {url.host}:{url.port}: {exc or 'timeout'}") from None
        conn = rc.RtmpClientConnection()
        ingest: FlvIngest | None = None
        try:
            writer.write(conn.initial_bytes())
            conn.connect(
                app, f"{url.scheme}://{url.host}:{url.port}/{app}"
            )  # queued until the handshake ends
            while True:
                data = await asyncio.wait_for(reader.read(65536), NO_DATA_TIMEOUT)
                if not data:
                    raise SourceError("server closed the connection")
                self.session.bytes_in += len(data)
                for event in conn.receive_data(data):
                    if isinstance(event, rc.ConnectResult):
                        if not event.success:
                            raise SourceError(f"connect refused: {event.code} {event.description}")
                        conn.create_stream()
                    elif isinstance(event, rc.StreamCreated):
                        conn.play(name)
                    elif isinstance(event, rc.Status):
                        if event.code in ("NetStream.Play.StreamNotFound", "NetStream.Play.Failed"):
                            raise SourceError(f"{event.code}: {event.description}")
                        if event.code == "NetStream.Play.Start" and ingest is None:
                            ingest = FlvIngest(await self._publish())
                        elif event.code in ("NetStream.Play.Stop", "NetStream.Play.UnpublishNotify"):
                            raise SourceError(f"source ended: {event.code}")
                    elif isinstance(event, MediaReceived) and ingest is not None:
                        ingest.stream.bytes_in += len(event.payload)
                        ingest.media(event.kind, event.payload, event.timestamp)
                        self._check_live(ingest.stream)
                out = conn.data_to_send()
                if out:
                    writer.write(out)
        except TimeoutError:
            raise SourceError(f"no data for {NO_DATA_TIMEOUT:g}s") from None
        except (RtmpError, ValueError) as exc:
            raise SourceError(f"bad RTMP from the source: {exc}") from None
        finally:
            writer.close()
