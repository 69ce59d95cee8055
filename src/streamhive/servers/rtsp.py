"""The RTSP/RTSPS adapter: publishers (ANNOUNCE/SETUP/RECORD) and players (DESCRIBE/SETUP/PLAY).

One asyncio.Protocol per TCP connection, an RTSP session per connection (what ffmpeg, VLC,
GStreamer and NVRs do). RTP travels interleaved on the connection or over UDP through one
shared pair of server ports (like MediaMTX's rtpAddress/rtcpAddress), where incoming datagrams
are matched to their session by source address.

Players are hub Readers like RTMP players: the Stream packetizes each frame once per channel
layout (RtpMuxer) and every reader of that layout gets the same bytes in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from ..auth import Credentials
from ..formats.rtp import codec_for_track
from ..formats.rtp.muxer import RtpMuxer, media_sections
from ..formats.rtp.packet import is_rtcp
from ..formats.sdp import SdpError, parse_sdp
from ..hub import Reader, Refused, Session, Stream
from ..hub.frame import Track
from ..protocols.rtsp.auth import AuthResult, DigestAuthority, basic_challenge, parse_authorization
from ..protocols.rtsp.headers import Transport, format_session, parse_transports
from ..protocols.rtsp.message import Headers, Interleaved, Request, Response, RtspError, RtspParser
from ..protocols.rtsp.url import split_control
from ..tls import server_context
from .connection import ClientConnection
from .rtp_ingest import RECEIVER_SSRC, IngestMedia, RtpIngest, describe_medias, ingest_medias
from .udp_pair import bind_pair

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.rtsp")

PUBLIC = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"
REFUSED_STATUS = {
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "bad_path": 400,
    "too_many": 453,
    "busy": 403,
}
#: Seconds between RTCP receiver reports to a publisher or camera.
RR_INTERVAL = 5.0
#: Requests a client may send ahead of our answers (clients pipeline a few at most).
MAX_PIPELINED = 32
#: How long DESCRIBE waits for a just-started publisher to announce its tracks.
TRACKS_WAIT = 5.0
SERVER_NAME = "streamhive"


class RtspReply(RtspError):
    """Answer the current request with this status and extra headers (401 with challenges...)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status, reason)
        self.headers = headers or []


def _split_uri(uri: str) -> tuple[str, str]:
    """(path, query) of a request URI, absolute (rtsp://host/path) or bare (/path)."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise RtspError(400, f"bad request URI: {exc}") from None
    return unquote(parts.path).strip("/"), parts.query


def _uri_path(uri: str) -> str | None:
    try:
        return urlsplit(uri).path.rstrip("/")
    except ValueError:
        return None


class UdpReaderTransport:
    """What a UDP player's hub Reader writes to: interleaved frames become datagrams.

    The muxer numbers track i's RTP channel 2i and RTCP 2i+1; this sends each to the player's
    port for it from the server's shared RTP/RTCP sockets. UDP never queues, so there is no
    backlog to report: a player that cannot keep up loses packets, as with any UDP stream.
    """

    def __init__(self, service: RtspService, host: str, ports: dict[int, int]) -> None:
        self.service = service
        self.host = host
        self.ports = ports  # channel -> client port
        self.closing = False

    def write(self, data: bytes) -> None:
        rtp, rtcp = self.service.udp_rtp, self.service.udp_rtcp
        if rtp is None or rtcp is None:
            return
        pos, end, ports, host = 0, len(data), self.ports, self.host
        try:
            while pos + 4 <= end:
                channel, size = data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
                port = ports.get(channel)
                if port is not None:
                    (rtcp if channel & 1 else rtp).sendto(data[pos + 4 : pos + 4 + size], (host, port))
                pos += 4 + size
        except (OSError, OverflowError, ValueError):
            self.closing = True  # this player's address is unusable; the hub drops it next

    def writelines(self, parts: list[bytes]) -> None:
        for data in parts:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: RtspService, rtcp: bool) -> None:
        self.service = service
        self.rtcp = rtcp

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.service.datagram(data, addr, self.rtcp)


class RtspService:
    """The RTSP listeners of a Server and the UDP sockets their sessions share."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.udp_rtp: asyncio.DatagramTransport | None = None
        self.udp_rtcp: asyncio.DatagramTransport | None = None
        #: (client host, client port) -> (connection, media index) for UDP publishers and players
        self.udp_peers: dict[tuple[str, int], tuple[RtspConnection, int]] = {}
        self.digest = DigestAuthority(server.config.rtsp.realm, os.urandom(32))

    async def start(self) -> list[asyncio.AbstractServer]:
        cfg = self.server.config.rtsp
        loop = asyncio.get_running_loop()
        from ..config import parse_listen

        host, port = parse_listen(cfg.listen)
        servers = [
            await loop.create_server(lambda: RtspConnection(self, "rtsp"), host, port, reuse_address=True)
        ]
        if cfg.udp:
            await self._bind_udp(host or "0.0.0.0", cfg.rtp_port, cfg.rtcp_port)
        if cfg.rtsps is not None:
            context = server_context(self.server.config, cfg.rtsps.cert, cfg.rtsps.key)
            host, port = parse_listen(cfg.rtsps.listen)
            servers.append(
                await loop.create_server(
                    lambda: RtspConnection(self, "rtsps"), host, port, ssl=context, reuse_address=True
                )
            )
        return servers

    async def _bind_udp(self, host: str, rtp_port: int, rtcp_port: int) -> None:
        self.udp_rtp, self.udp_rtcp = await bind_pair(
            host, lambda rtcp: _Udp(self, rtcp), rtp_port, rtcp_port
        )

    @property
    def udp_ports(self) -> tuple[int, int] | None:
        if self.udp_rtp is None or self.udp_rtcp is None:
            return None
        return self.udp_rtp.get_extra_info("sockname")[1], self.udp_rtcp.get_extra_info("sockname")[1]

    def stop(self) -> None:
        for transport in (self.udp_rtp, self.udp_rtcp):
            if transport is not None:
                transport.close()
        self.udp_rtp = self.udp_rtcp = None

    def datagram(self, data: bytes, addr: tuple[str, int], rtcp: bool) -> None:
        peer = self.udp_peers.get((addr[0], addr[1]))
        if peer is None:
            return  # not a port any session set up: ignore strays and spoofs alike
        conn, media = peer
        conn.udp_received(media, data, rtcp)


class RtspConnection(ClientConnection):
    """One client connection and its RTSP session."""

    def __init__(self, service: RtspService, protocol_name: str) -> None:
        self.service = service
        self.server = service.server
        self.hub = service.server.hub
        self.cfg = service.server.config.rtsp
        self.protocol_name = protocol_name
        self.parser = RtspParser(max_header_bytes=self.cfg.max_request_bytes)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.host = "?"
        self.closed = False
        self.requests: asyncio.Queue[Request] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None  # first-request, then session timeout
        self.rr_timer: asyncio.TimerHandle | None = None  # receiver reports to a publisher
        self.loop = asyncio.get_running_loop()
        self.last_seen = self.loop.time()
        self._reset_session()

    def _reset_session(self) -> None:
        self.rtsp_id: str | None = None
        self.mode: str | None = None  # "play" | "record"
        self.path: str | None = None
        self.stream: Stream | None = None
        # players: hub track index -> ("tcp", RTP, RTCP channel) or ("udp", client RTP, RTCP port)
        self.play_setup: dict[int, tuple[str, int, int]] = {}
        self.reader: Reader | None = None
        # publishers
        self.medias: list[IngestMedia | None] = []
        self.media_setup: dict[int, tuple[str, int, int]] = {}  # media index -> as play_setup
        self.channels: dict[int, tuple[int, bool]] = {}  # interleaved channel -> (media, is RTCP)
        self.ingest: RtpIngest | None = None
        self.udp_keys: list[tuple[str, int]] = []
        self.announce_credentials = Credentials()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.open_session(transport, self.hub, self.protocol_name):
            return
        self.timer = self.loop.call_later(self.cfg.request_timeout, self._first_request_timeout)
        self.worker = asyncio.ensure_future(self._serve())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        assert self.session is not None
        self.session.bytes_in += len(data)
        self.last_seen = self.loop.time()
        try:
            events = self.parser.feed(data)
        except RtspError as exc:
            self._send(Response(exc.status, _reason(exc.status), Headers([("Server", SERVER_NAME)])))
            self.close(f"bad request: {exc}")
            return
        for event in events:
            if isinstance(event, Interleaved):
                self._interleaved(event.channel, event.data)
            elif isinstance(event, Request):
                if self.timer is not None and self.rtsp_id is None:
                    self.timer.cancel()
                    self.timer = None
                if self.requests.qsize() >= MAX_PIPELINED:
                    self.close(f"more than {MAX_PIPELINED} requests waiting for answers")
                    return
                self.requests.put_nowait(event)
            if self.closed:
                return

    # -- media in -------------------------------------------------------------------------------
    def _interleaved(self, channel: int, data: bytes) -> None:
        target = self.channels.get(channel)
        if target is None:
            if channel in self._player_channels():
                return  # a player's RTCP receiver report (playing or paused): nothing to act on
            self.close(f"interleaved data on channel {channel}, which was never set up")
            return
        self._media_in(target[0], data, target[1])

    def udp_received(self, media: int, data: bytes, rtcp: bool) -> None:
        self.last_seen = self.loop.time()
        if self.ingest is not None:
            assert self.session is not None
            self.session.bytes_in += len(data)
            self._media_in(media, data, rtcp)

    def _media_in(self, media: int, data: bytes, rtcp: bool) -> None:
        ingest = self.ingest
        if ingest is None:
            return
        if rtcp or is_rtcp(data):
            ingest.rtcp(media, data, self.loop.time())
        else:
            ingest.stream.bytes_in += len(data)
            ingest.rtp(media, data, self.loop.time())

    # -- requests -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        while not self.closed:
            request = await self.requests.get()
            cseq = request.headers.get("CSeq")
            headers = Headers([("CSeq", cseq or "0"), ("Server", SERVER_NAME)])
            try:
                if cseq is None:
                    raise RtspReply(400, "missing CSeq header")
                response = await self._handle(request, headers)
            except RtspError as exc:  # RtspReply, or a header the parsers refused
                for name, value in getattr(exc, "headers", ()):
                    headers.add(name, value)
                response = Response(exc.status, _reason(exc.status), headers)
                log.info(
                    "session %s: %s %s -> %d %s",
                    self.session.id if self.session else "?",
                    request.method,
                    _split_uri(request.uri)[0] or "*",  # never the query: it may hold a token
                    exc.status,
                    exc,
                )
            except Exception:  # a bug of ours: say so, end this session, keep the server
                log.exception(
                    "session %s: %s %s failed",
                    self.session.id if self.session else "?",
                    request.method,
                    _split_uri(request.uri)[0] or "*",
                )
                self._send(Response(500, _reason(500), headers))
                self.close("internal error")
                return
            self._send(response)
            try:
                self._after_response(request, response)
            except Exception:
                log.exception(
                    "session %s: after %s", self.session.id if self.session else "?", request.method
                )
                self.close("internal error")
                return

    def _after_response(self, request: Request, response: Response) -> None:
        if response.status != 200:
            return
        if request.method == "PLAY" and self.reader is None and self.stream is not None:
            self._attach_reader()
        elif request.method == "TEARDOWN":
            self._end_session("teardown")

    async def _handle(self, request: Request, headers: Headers) -> Response:
        method = request.method
        session_header = request.headers.get("Session")
        if (
            session_header is not None
            and self.rtsp_id is not None
            and session_header.split(";", 1)[0].strip() != self.rtsp_id
        ):
            raise RtspReply(454, "session not found")
        if method == "OPTIONS":
            headers.add("Public", PUBLIC)
            return Response(200, "OK", headers)
        if method in ("GET_PARAMETER", "SET_PARAMETER"):
            self._with_session(headers)
            return Response(200, "OK", headers)
        handler = {
            "DESCRIBE": self._describe,
            "ANNOUNCE": self._announce,
            "SETUP": self._setup,
            "PLAY": self._play,
            "RECORD": self._record,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
        }.get(method)
        if handler is None:
            raise RtspReply(501, f"method {method} not implemented", [("Public", PUBLIC)])
        return await handler(request, headers)

    def _with_session(self, headers: Headers) -> None:
        if self.rtsp_id is not None:
            headers.add("Session", format_session(self.rtsp_id, int(self.cfg.session_timeout)))

    def _credentials(self, request: Request) -> Credentials:
        """What the Authorization header proves, Basic or Digest (``?token=`` joins in the hub)."""
        value = request.headers.get("Authorization")
        agent = request.headers.get("User-Agent")
        if value is None:
            return Credentials(user_agent=agent)
        creds = parse_authorization(value)
        if creds.scheme == "basic":
            return Credentials(creds.username, creds.password, user_agent=agent)
        digest, method = self.service.digest, request.method
        now = time.time()
        age = digest.nonce_age(creds.nonce or "", now)
        if age is not None and age > digest.nonce_ttl:
            raise RtspReply(401, "stale digest nonce", self._challenges(stale=True))

        # An answer is bound to the URI it was computed for: one sniffed on another path (or
        # another request) must not open this one.
        answered = _uri_path(creds.uri or "")
        same_uri = answered is not None and answered == _uri_path(request.uri)

        def verify(password: str) -> bool:
            return same_uri and digest.verify(creds, password, method, now) is AuthResult.OK

        return Credentials(creds.username, verifier=verify, user_agent=agent)

    def _challenges(self, stale: bool = False) -> list[tuple[str, str]]:
        out = []
        for method in self.cfg.auth_methods:
            if method == "digest":
                out.append(("WWW-Authenticate", self.service.digest.challenge(time.time(), stale=stale)))
            else:
                out.append(("WWW-Authenticate", basic_challenge(self.cfg.realm)))
        return out

    def _refused(self, refused: Refused) -> RtspReply:
        status = REFUSED_STATUS.get(refused.code, 400)
        extra = self._challenges() if status == 401 else []
        return RtspReply(status, str(refused), extra)

    async def _readable(self, request: Request, path: str, query: str) -> Stream:
        """The stream at ``path`` if this client may read it (the query's credentials count;
        a request without a query keeps the one the session started with)."""
        assert self.session is not None
        if query:
            self.session.query = query
        try:
            return await self.hub.find_readable(path, self.session, self._credentials(request))
        except Refused as refused:
            raise self._refused(refused) from None

    async def _describe(self, request: Request, headers: Headers) -> Response:
        stream = await self._readable(request, *_split_uri(request.uri))
        deadline = self.loop.time() + TRACKS_WAIT
        while not stream.tracks and not stream.ended and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        media = media_sections(stream.tracks, lambda i: f"trackID={i}")
        if not media:
            raise RtspReply(415, f"{stream.path!r} has no track RTP can carry")
        host = self.transport.get_extra_info("sockname")[0] if self.transport else "0.0.0.0"
        lines = [
            "v=0",
            f"o=- {abs(hash(stream)) & 0xFFFFFFFF} 1 IN IP4 {host}",
            f"s={SERVER_NAME}",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            *media,
        ]
        base = urlsplit(request.uri)  # without the query: clients append controls to it
        headers.add(
            "Content-Base", urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + "/", "", ""))
        )
        headers.add("Content-Type", "application/sdp")
        return Response(200, "OK", headers, ("\r\n".join(lines) + "\r\n").encode())

    async def _announce(self, request: Request, headers: Headers) -> Response:
        if self.mode is not None:
            raise RtspReply(455, "session already set up")
        path, query = _split_uri(request.uri)
        assert self.session is not None
        self.session.query = query
        try:
            sdp = parse_sdp(request.body)
        except SdpError as exc:
            raise RtspReply(400, f"bad SDP: {exc}") from None
        medias = ingest_medias(sdp)
        if not any(medias):
            raise RtspReply(415, "no media in a format this server can take")
        credentials = self._credentials(request)
        try:
            self.path = await self.hub.authorize(path, self.session, "publish", credentials)
        except Refused as refused:
            raise self._refused(refused) from None
        self.mode, self.medias = "record", medias
        self.announce_credentials = credentials
        log.info("session %s announces %s: %s", self.session.id, self.path, describe_medias(medias))
        return Response(200, "OK", headers)

    async def _setup(self, request: Request, headers: Headers) -> Response:
        value = request.headers.get("Transport")
        if value is None:
            raise RtspReply(461, "missing Transport header")
        transport = self._pick_transport(parse_transports(value))
        if self.mode == "record":
            key = self._setup_record(request, transport)
        else:
            key = await self._setup_play(request, transport)
        reply = transport_reply(transport, key, self.service.udp_ports)
        if self.rtsp_id is None:
            self.rtsp_id = os.urandom(8).hex()
        headers.add("Transport", reply)
        self._with_session(headers)
        return Response(200, "OK", headers)

    def _pick_transport(self, offers: list[Transport]) -> Transport:
        for offer in offers:
            if offer.multicast:
                continue
            if offer.lower == "TCP":
                return offer
            if self.service.udp_ports is not None and self.protocol_name == "rtsp" and offer.client_port:
                return offer
        raise RtspReply(
            461,
            "no acceptable transport (offered: TCP interleaved"
            + (", UDP unicast)" if self.service.udp_ports else ")"),
        )

    def _player_channels(self) -> set[int]:
        return {ch for kind, a, b in self.play_setup.values() if kind == "tcp" for ch in (a, b)}

    def _interleave_or_udp(self, transport: Transport) -> tuple[str, int, int]:
        """("tcp", RTP channel, RTCP channel) or ("udp", client RTP port, client RTCP port)."""
        kinds = {kind for kind, _, _ in (*self.play_setup.values(), *self.media_setup.values())}
        kind = "tcp" if transport.lower == "TCP" else "udp"
        if kinds and kinds != {kind}:
            raise RtspReply(461, "one session cannot mix UDP and TCP transports")
        if kind == "tcp":
            used = set(self.channels) | self._player_channels()
            if transport.interleaved is not None:
                channel = transport.interleaved[0]
                if channel > 254 or channel in used or channel + 1 in used:
                    raise RtspReply(
                        461, f"interleaved channels {channel}-{channel + 1} already in use or invalid"
                    )
                return "tcp", channel, channel + 1
            channel = 0
            while channel in used or channel + 1 in used:
                channel += 2
            if channel > 254:
                raise RtspReply(461, "no interleaved channels left")
            return "tcp", channel, channel + 1
        assert transport.client_port is not None
        rtp, rtcp = transport.client_port
        if not (0 < rtp <= 65535 and 0 < rtcp <= 65535) or rtp == rtcp:
            raise RtspReply(461, f"bad client_port {rtp}-{rtcp}")
        return "udp", rtp, rtcp

    def _claim_udp(self, ports: tuple[int, ...], index: int) -> None:
        """Route datagrams from these client ports to this session, unless another has them."""
        for port in ports:
            owner = self.service.udp_peers.get((self.host, port))
            if owner is not None and owner[0] is not self and not owner[0].closed:
                raise RtspReply(461, f"client port {port} is in use by another session")
        for port in ports:
            key = (self.host, port)
            self.service.udp_peers[key] = (self, index)
            self.udp_keys.append(key)

    def _setup_record(self, request: Request, transport: Transport) -> tuple[str, int]:
        assert self.path is not None
        controls = [m.control for m in self.medias if m is not None and m.control]
        _, control = split_control(request.uri, controls)
        index = next((i for i, m in enumerate(self.medias) if m is not None and m.control == control), None)
        if control is None:  # a SETUP of the stream itself: the next media not set up yet
            index = next(
                (i for i, m in enumerate(self.medias) if m is not None and i not in self.media_setup), None
            )
        if index is None or index in self.media_setup:
            raise RtspReply(404, f"no announced media with control {control!r}")
        kind, a, b = self._interleave_or_udp(transport)
        if kind == "tcp":
            self.channels[a], self.channels[b] = (index, False), (index, True)
        else:
            self._claim_udp((a, b), index)
        self.media_setup[index] = (kind, a, b)
        return kind, a

    async def _setup_play(self, request: Request, transport: Transport) -> tuple[str, int]:
        path, query = _split_uri(request.uri)
        if "/trackID=" in query:  # a client that appended the control to a URL with a query
            query, _, control = query.rpartition("/")
            path = f"{path}/{control}"
        head, _, last = path.rpartition("/")
        index = None
        if last.startswith("trackID="):
            path = head
            with contextlib.suppress(ValueError):
                index = int(last[len("trackID=") :])
        if self.path is None:
            self.stream = await self._readable(request, path, query)
            self.path, self.mode = self.stream.path, "play"
        elif path != self.path:
            raise RtspReply(455, "all SETUPs of a session must be on one path")
        stream = self.stream
        assert stream is not None
        usable = [i for i, track in enumerate(stream.tracks) if codec_for_track(track) is not None]
        if index is None:
            index = next((i for i in usable if i not in self.play_setup), None)
        if index is None or index not in usable or index in self.play_setup:
            raise RtspReply(404, "no such track, or it is set up already")
        kind, a, b = self._interleave_or_udp(transport)
        if kind == "udp":
            self._claim_udp((b,), index)  # the player's receiver reports keep its session alive
        self.play_setup[index] = (kind, a, b)
        return kind, a

    async def _play(self, request: Request, headers: Headers) -> Response:
        if self.mode != "play" or not self.play_setup or self.path is None:
            raise RtspReply(455, "PLAY before SETUP")
        if self.reader is None:
            assert self.session is not None
            try:
                self.stream = await self.hub.read(self.path, self.session, self._credentials(request))
            except Refused as refused:
                raise self._refused(refused) from None
        self._with_session(headers)
        headers.add("Range", "npt=0.000-")
        return Response(200, "OK", headers)

    def _attach_reader(self) -> None:
        assert self.session is not None and self.transport is not None and self.stream is not None
        udp = any(kind == "udp" for kind, _, _ in self.play_setup.values())
        channels: dict[int, int] = {}
        ports: dict[int, int] = {}
        for index, (_kind, a, b) in self.play_setup.items():
            if udp:
                channels[index] = 2 * index
                ports[2 * index], ports[2 * index + 1] = a, b
            else:
                channels[index] = a
        mtu = self.cfg.mtu
        layout = ",".join(f"{i}:{c}" for i, c in sorted(channels.items()))

        def factory(tracks: list[Track]) -> RtpMuxer:
            return RtpMuxer(tracks, channels, mtu)

        target = UdpReaderTransport(self.service, self.host, ports) if udp else self.transport
        self.reader = Reader(self.session, target, (f"rtp:{mtu}:{layout}", factory), self._reader_end)  # type: ignore[arg-type]
        self.stream.attach(self.reader)
        log.info("session %s plays %s over %s", self.session.id, self.stream.path, "UDP" if udp else "TCP")
        if udp:
            self._arm_session_timeout()

    async def _record(self, request: Request, headers: Headers) -> Response:
        if self.mode != "record" or not self.media_setup or self.path is None:
            raise RtspReply(455, "RECORD before ANNOUNCE and SETUP")
        if self.ingest is None:
            assert self.session is not None
            try:
                stream = await self.hub.publish(self.path, self.session, self.announce_credentials)
            except Refused as refused:
                raise self._refused(refused) from None
            if self.closed:
                self.hub.unpublish(stream, self.session)
                raise RtspReply(400, "connection closed")
            udp = any(kind == "udp" for kind, _, _ in self.media_setup.values())
            self.stream = stream
            self.ingest = RtpIngest(stream, self.medias, reorder=udp)
            self.rr_timer = self.loop.call_later(RR_INTERVAL, self._receiver_reports)
            self._arm_session_timeout()  # a publisher that goes silent must not hold the path
        self._with_session(headers)
        return Response(200, "OK", headers)

    async def _pause(self, request: Request, headers: Headers) -> Response:
        if self.reader is not None:
            reader, self.reader = self.reader, None
            reader.close("paused", notify=False)
            assert self.session is not None
            self.hub.read_ended(self.session)  # PLAY again is a new read
        self._with_session(headers)
        return Response(200, "OK", headers)

    async def _teardown(self, request: Request, headers: Headers) -> Response:
        return Response(200, "OK", headers)

    # -- timers and RTCP out --------------------------------------------------------------------
    def _first_request_timeout(self) -> None:
        self.close(f"no request within {self.cfg.request_timeout:g}s")

    def _arm_session_timeout(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.closed:
            return
        idle = self.loop.time() - self.last_seen
        timeout = self.cfg.session_timeout
        if idle > timeout:
            self.close(f"session timed out: nothing from the client for {timeout:g}s")
            return
        self.timer = self.loop.call_later(timeout - idle + 0.5, self._arm_session_timeout)

    def _receiver_reports(self) -> None:
        ingest = self.ingest
        if self.closed or ingest is None:
            return
        for media, (kind, _rtp, rtcp) in self.media_setup.items():
            report = ingest.receiver_report(media, RECEIVER_SSRC, self.loop.time())
            if report is None:
                continue
            if kind == "tcp":
                self._write(struct.pack(">BBH", 0x24, rtcp, len(report)) + report)
            elif self.service.udp_rtcp is not None:
                with contextlib.suppress(OSError, OverflowError, ValueError):
                    self.service.udp_rtcp.sendto(report, (self.host, rtcp))
        self.rr_timer = self.loop.call_later(RR_INTERVAL, self._receiver_reports)

    # -- output and closing ---------------------------------------------------------------------
    def _send(self, response: Response) -> None:
        self._write(response.encode())

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            if self.session is not None:
                self.session.bytes_out += len(data)

    def _reader_end(self, reason: str) -> None:
        if self.closed or self.transport is None:
            return
        if reason.startswith("slow reader"):
            self.transport.abort()
        self.close(reason)

    def _end_session(self, reason: str) -> None:
        """TEARDOWN or close: stop publishing or reading; the connection may carry on."""
        if self.reader is not None:
            reader, self.reader = self.reader, None
            if isinstance(reader.transport, UdpReaderTransport):
                reader.transport.close()
            reader.close(reason, notify=False)
            if self.session is not None:
                self.hub.read_ended(self.session)
        if self.ingest is not None and self.stream is not None and self.session is not None:
            self.hub.unpublish(self.stream, self.session)
        for key in self.udp_keys:
            if self.service.udp_peers.get(key, (None,))[0] is self:
                del self.service.udp_peers[key]
        for timer in (self.timer, self.rr_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.rr_timer = None
        self._reset_session()

    def _cleanup(self, reason: str) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.worker is not None and self.worker is not asyncio.current_task():
            self.worker.cancel()
        self._end_session(reason)
        if self.session is not None:
            if self.session.close_reason is None:
                self.session.close_reason = reason
            self.hub.remove_session(self.session)
            self.session = None


def transport_reply(transport: Transport, key: tuple[str, int], udp_ports: tuple[int, int] | None) -> str:
    """The Transport header of a SETUP answer: what the client offered, with our side filled in."""
    kind, value = key
    if kind == "tcp":
        return f"RTP/AVP/TCP;unicast;interleaved={value}-{value + 1}"
    assert udp_ports is not None and transport.client_port is not None
    client = transport.client_port
    mode = f";mode={transport.mode}" if transport.mode else ""
    return (
        f"RTP/AVP;unicast;client_port={client[0]}-{client[1]};server_port={udp_ports[0]}-{udp_ports[1]}{mode}"
    )


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Error")
