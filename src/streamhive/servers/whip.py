"""WHIP (RFC 9725) and WHEP: WebRTC publishers and players over HTTP offer/answer.

``POST /{path}/whip`` with an SDP offer makes the client the path's publisher; ``POST
/{path}/whep`` makes it a player. The answer comes back with ``201 Created`` and a ``Location``
(the session resource: ``DELETE`` ends the session, ``PATCH`` takes trickle ICE fragments).

A publisher's RTP becomes hub Frames through the same receivers RTSP uses; players are hub
Readers in one group per stream, so every frame is packetized once for all WebRTC players and
each player only encrypts and sends (SRTP contexts differ per peer).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from typing import TYPE_CHECKING

from aiohttp import web

from ..formats.rtp import RtpError, codec_for_encoding
from ..formats.rtp.muxer import RtpMuxer
from ..formats.rtp.nack import NackTracker, RtpHistory
from ..formats.rtp.packet import RtpPacket, rtp_header
from ..formats.rtp.rtcp import Fir, Nack, Pli, Remb, SenderReport, parse_compound, serialize_compound
from ..hub import Reader, Refused, Session, Stream
from ..hub.frame import Track
from ..protocols.webrtc import WebRtcError
from ..protocols.webrtc.sdp import (
    Answer,
    LocalIce,
    NegotiatedMedia,
    Offer,
    SdpNegotiationError,
    SendTrack,
    answer_play,
    answer_publish,
    parse_offer,
)
from .http_auth import credentials_of, refusal, remote_of
from .rtp_ingest import IngestMedia, RtpIngest
from .webrtc import Peer, WebRtcService

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.whip")

#: What WebRTC readers can play: other audio is transcoded to Opus (hub/views.py).
WEBRTC_AUDIO = frozenset(("opus", "pcma", "pcmu"))
#: What we take from publishers, in order of preference when a browser offers several.
PUBLISH_CODECS = {
    "video": ["h264", "vp8", "vp9", "av1", "h265"],
    "audio": ["opus", "pcmu", "pcma"],
}
#: Seconds between keyframe requests to one publisher (PLI storms make encoders stall).
KEYFRAME_INTERVAL = 0.5
#: Seconds between receiver reports (and REMB) to publishers.
REPORT_INTERVAL = 1.0
#: Seconds a gap in a publisher's RTP stays open for the retransmission our NACK asks for.
REORDER_WAIT = 0.25
#: Seconds after a publisher starts during which a player waits for its video parameters.
TRACKS_WAIT = 3.0
#: Our SSRC in the feedback we send publishers (no media goes their way).
FEEDBACK_SSRC = 0x5354524D

_SEQ = struct.Struct("!H")


class WhipPublisher:
    """A WebRTC publisher: SRTP-decrypted RTP in, Frames into the Stream; NACK, PLI, REMB out."""

    def __init__(self, peer: Peer, stream: Stream, medias: list[NegotiatedMedia], server: Server) -> None:
        self.peer = peer
        self.stream = stream
        self.server = server
        ingest: list[IngestMedia | None] = []
        self.by_pt: dict[int, int] = {}
        self.rtx: dict[int, tuple[int, int]] = {}  # RTX payload type -> (media index, its payload type)
        for media in medias:
            codec = codec_for_encoding(media.fmt.encoding)
            if codec is None:
                ingest.append(None)
                continue
            track = codec.track_from_sdp(media.fmt)
            self.by_pt[media.payload_type] = len(ingest)
            if media.rtx_payload_type is not None:
                self.rtx[media.rtx_payload_type] = (len(ingest), media.payload_type)
            ingest.append(IngestMedia(media.mid, codec, track, media.fmt, media.payload_type))
        self.ingest = RtpIngest(stream, ingest, reorder=True)
        self.video = {i for i, m in enumerate(ingest) if m is not None and m.codec.kind == "video"}
        for index in self.video:  # only video is NACKed: only its gaps are worth waiting for
            self.ingest.receivers[index].reorder_wait = REORDER_WAIT
        self.ssrcs: dict[int, int] = {}  # media index -> the publisher's SSRC
        self.by_ssrc: dict[int, int] = {}
        self.nacks: dict[int, NackTracker] = {i: NackTracker() for i in self.video}
        self.next_report = 0.0
        self.last_keyframe_request = -KEYFRAME_INTERVAL
        self.keyframe_wanted = False
        self.keyframes_seen = 0  # the stream's keyframe count when we last asked for one
        self.lost_seen: dict[int, int] = {}  # video media index -> losses its reorderer declared
        peer.session.request_keyframe = self.request_keyframe

    def connected(self) -> None:
        self.request_keyframe()  # readers may be waiting; encoders start with one anyway

    def rtp(self, packet: bytes, now: float) -> None:
        if len(packet) < 12:
            return
        pt = packet[1] & 0x7F
        media = self.by_pt.get(pt)
        if media is None:
            if pt not in self.rtx:
                return
            repaired = self._repaired(packet, *self.rtx[pt])
            if repaired is None:
                return
            media, packet = repaired
        ssrc = int.from_bytes(packet[8:12], "big")
        if self.ssrcs.get(media) != ssrc:
            self.ssrcs[media] = ssrc
            self.by_ssrc[ssrc] = media
        tracker = self.nacks.get(media)
        if tracker is not None:
            tracker.packet(_SEQ.unpack_from(packet, 2)[0], now)
        self.ingest.rtp(media, packet, now)
        if media in self.video:
            receiver = self.ingest.receivers[media]
            lost = receiver.reorderer.lost if receiver.reorderer is not None else 0
            if lost != self.lost_seen.get(media, 0):  # NACK could not save it: ask for a keyframe
                self.lost_seen[media] = lost
                self.request_keyframe()

    def _repaired(self, packet: bytes, media: int, pt: int) -> tuple[int, bytes] | None:
        """The original packet inside an RTX one (RFC 4588), or None for a padding-only probe."""
        ssrc = self.ssrcs.get(media)
        try:
            rtx = RtpPacket.parse(packet)
        except RtpError:
            return None
        if ssrc is None or len(rtx.payload) < 3:  # bandwidth probes: padding, or nothing after OSN
            return None
        self.peer.service.counters["rtx_from_publishers"] += 1
        original = rtx.payload[:2]
        header = rtp_header(pt, _SEQ.unpack(original)[0], rtx.timestamp, ssrc, rtx.marker)
        return media, header + rtx.payload[2:]

    def rtcp(self, packet: bytes, now: float) -> None:
        try:
            packets = parse_compound(packet)
        except RtpError:
            return
        for item in packets:
            if isinstance(item, SenderReport):
                media = self.by_ssrc.get(item.ssrc)
                if media is not None:
                    self.ingest.sender_report(media, item, now)

    def request_keyframe(self) -> None:
        if not self.keyframe_wanted:
            self.keyframe_wanted = True
            self.keyframes_seen = self.stream.keyframes_in

    def tick(self, now: float) -> None:
        feedback: list[object] = []
        counters = self.peer.service.counters
        for media, tracker in self.nacks.items():
            lost = tracker.due(now)
            ssrc = self.ssrcs.get(media)
            if lost and ssrc is not None:
                feedback.append(Nack(FEEDBACK_SSRC, ssrc, lost))
                counters["nacked_to_publishers"] += len(lost)
        if self.keyframe_wanted and self.stream.keyframes_in != self.keyframes_seen:
            self.keyframe_wanted = False
        # The request is repeated until a keyframe arrives: a lost PLI would otherwise leave
        # waiting players dark until the next loss (browsers send keyframes only when asked).
        if self.keyframe_wanted and now - self.last_keyframe_request >= KEYFRAME_INTERVAL:
            plis = [Pli(FEEDBACK_SSRC, self.ssrcs[m]) for m in self.video if m in self.ssrcs]
            if plis:  # else wait for the video SSRC to be known
                self.last_keyframe_request = now
                counters["keyframe_requests_to_publishers"] += len(plis)
                feedback += plis
        if now >= self.next_report and self.ssrcs:
            self.next_report = now + REPORT_INTERVAL
            for media in self.ssrcs:
                report = self.ingest.receiver_report(media, FEEDBACK_SSRC, now)
                if report is not None:
                    self.peer.send_rtcp(report)
            bitrate = self.server.config.webrtc.publish_bitrate
            feedback.append(Remb(FEEDBACK_SSRC, bitrate, list(self.ssrcs.values())))
        if feedback:
            self.peer.send_rtcp(serialize_compound(feedback))  # type: ignore[arg-type]

    def closed(self, reason: str) -> None:
        hub = self.server.hub
        hub.unpublish(self.stream, self.peer.session)
        hub.remove_session(self.peer.session)


class Fanout:
    """What every WebRTC player of one Stream shares: SSRCs, payload types, the NACK history.

    It lives while it has players (connected or not yet), so an ended Stream and its history
    are not kept for the next offer.
    """

    def __init__(self, stream: Stream, history_size: int, mtu: int) -> None:
        self.stream = stream
        self.players = 0
        self.ssrcs = {i: secrets.randbits(32) for i in range(8)}
        self.payload_types: dict[int, int] = {}  # the first player's; others rewrite theirs
        self.history: dict[int, RtpHistory] = {}
        self.history_size = history_size
        self.mtu = mtu
        self.format = ("webrtc", self._muxer)

    def _muxer(self, tracks: list[Track]) -> RtpMuxer:
        # Every index a player may negotiate, not only the tracks there are now: a track that
        # joins later (audio after video) is muxed once the muxer learns of it.
        channels = {index: 2 * index for index in self.ssrcs}
        return RtpMuxer(
            tracks,
            channels,
            self.mtu,
            payload_types=self.payload_types,
            ssrcs=self.ssrcs,
            history=self.record,
        )

    def record(self, ssrc: int, seq: int, packet: bytes) -> None:
        history = self.history.get(ssrc)
        if history is None:
            history = self.history[ssrc] = RtpHistory(self.history_size)
        history.add(seq, packet)


class WhepPlayer:
    """A WebRTC player: a hub Reader whose 'transport' encrypts each RTP packet for its peer.

    The group's muxer writes ``$``-framed RTP (channel = 2 x track index, +1 for sender
    reports), the form RTSP readers get; this splits it, maps the payload type to the one this
    browser chose, and sends. NACKs are answered from the shared history, PLIs go to the
    publisher when it can make keyframes on demand.
    """

    def __init__(
        self, peer: Peer, stream: Stream, medias: list[NegotiatedMedia], fanout: Fanout, server: Server
    ) -> None:
        self.peer = peer
        self.stream = stream
        self.fanout = fanout
        self.server = server
        self.pt_by_channel: dict[int, int] = {}
        for media in medias:
            if media.source is not None:
                self.pt_by_channel[2 * media.source] = media.payload_type
        if not fanout.payload_types:
            fanout.payload_types.update({ch // 2: pt for ch, pt in self.pt_by_channel.items()})
        self.rewrite = {
            ch: pt for ch, pt in self.pt_by_channel.items() if fanout.payload_types.get(ch // 2) != pt
        }
        self.reader = Reader(peer.session, self, fanout.format, self._end)  # type: ignore[arg-type]
        self.last_keyframe_request = -KEYFRAME_INTERVAL
        # One NACK can name the whole history: retransmissions are paced to at most the
        # history's size per second, so a player cannot make us send without bound.
        self.rtx_budget = float(fanout.history_size)
        self.rtx_time = 0.0
        fanout.players += 1

    # The asyncio.WriteTransport face the hub writes to ------------------------------------------
    def write(self, data: bytes) -> None:
        peer = self.peer
        route, srtp = peer.route, peer.srtp
        if route is None or srtp is None:
            return
        # The hot loop of WebRTC fan-out (once per packet per player): locals only, and one
        # send for the whole batch (UDP segmentation offload where the kernel has it).
        protect = srtp.protect
        pts, rewrite = self.pt_by_channel, self.rewrite
        out: list[bytes] = []
        pos, end = 0, len(data)
        try:
            while pos + 4 <= end:
                channel = data[pos + 1]
                start = pos + 4
                pos = start + ((data[pos + 2] << 8) | data[pos + 3])
                if channel & 1:
                    if channel - 1 in pts:
                        out.append(srtp.protect_rtcp(data[start:pos]))
                    continue
                if channel not in pts:
                    continue
                packet = data[start:pos]
                if channel in rewrite:
                    packet = _with_payload_type(packet, rewrite[channel])
                out.append(protect(packet))
        except WebRtcError as exc:  # never let one player's failure reach the stream's fan-out
            peer.close(f"SRTP failed: {exc}")
            return
        if out:
            route.send_many(out)
            peer.session.bytes_out += sum(map(len, out))

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.write(part)

    def get_write_buffer_size(self) -> int:
        route = self.peer.route
        return route.buffered() if route is not None else 0

    def is_closing(self) -> bool:
        return self.peer.closed

    # Peer handler ------------------------------------------------------------------------------
    def connected(self) -> None:
        if self.stream.ended:
            self.peer.close("stream ended")
            return
        # A WebRTC publisher makes a keyframe on request in a round trip: start there rather
        # than with the cached GOP, whose burst would sit in the browser's jitter buffer as
        # latency. Other publishers cannot be asked, so their players start with the cache.
        live = self.stream.publisher is not None and self.stream.publisher.request_keyframe is not None
        self.stream.attach(self.reader, gop=not live)
        if live:
            self.stream.request_keyframe()

    def rtp(self, packet: bytes, now: float) -> None:
        """Players send no media (a sendrecv offer may bring some): ignored."""

    def rtcp(self, packet: bytes, now: float) -> None:
        try:
            packets = parse_compound(packet)
        except RtpError:
            return
        counters = self.peer.service.counters
        for item in packets:
            if isinstance(item, Nack):
                counters["nacks_from_players"] += len(item.lost)
                self._retransmit(item, now)
            elif isinstance(item, Pli | Fir):
                counters["keyframe_requests_from_players"] += 1
                if now - self.last_keyframe_request >= KEYFRAME_INTERVAL:
                    self.last_keyframe_request = now
                    self.stream.request_keyframe()

    def _retransmit(self, nack: Nack, now: float) -> None:
        history = self.fanout.history.get(nack.media_ssrc)
        channel = next((2 * i for i, ssrc in self.fanout.ssrcs.items() if ssrc == nack.media_ssrc), -1)
        if history is None or channel not in self.pt_by_channel:
            return  # not a track this player receives
        rate = self.fanout.history_size
        self.rtx_budget = min(rate, self.rtx_budget + (now - self.rtx_time) * rate)
        self.rtx_time = now
        counters = self.peer.service.counters
        for count, seq in enumerate(nack.lost):
            if self.rtx_budget < 1:
                counters["retransmissions_throttled"] += len(nack.lost) - count
                return
            cached = history.get(seq)
            if cached is None:
                counters["nacks_too_old"] += 1
                continue
            if channel in self.rewrite:
                cached = _with_payload_type(cached, self.rewrite[channel])
            self.rtx_budget -= 1
            counters["retransmitted_to_players"] += 1
            self.peer.send_rtp(cached)

    def tick(self, now: float) -> None:
        """Sender reports come from the muxer with the media; nothing periodic here."""

    def _end(self, reason: str) -> None:
        self.peer.close(reason)

    def closed(self, reason: str) -> None:
        hub = self.server.hub
        if not self.reader.closed:
            self.reader.close(reason, notify=False)
        self.fanout.players -= 1
        if not self.fanout.players:
            self.server.whip.fanouts.pop(self.stream, None)
        hub.read_ended(self.peer.session)
        hub.remove_session(self.peer.session)


def _with_payload_type(packet: bytes, pt: int) -> bytes:
    return b"%c%c%b" % (packet[0], (packet[1] & 0x80) | pt, packet[2:])


# -- HTTP ---------------------------------------------------------------------------------------


class WhipService:
    """The HTTP side: offers in, answers out, session resources, and the fanouts of streams."""

    def __init__(self, server: Server, transport: WebRtcService) -> None:
        self.server = server
        self.transport = transport
        self.fanouts: dict[Stream, Fanout] = {}

    def add_routes(self, app: web.Application) -> None:
        for kind in ("whip", "whep"):
            app.router.add_route("POST", rf"/{{path:.+}}/{kind}", self.post)
            app.router.add_route("OPTIONS", rf"/{{path:.+}}/{kind}", self.options)
            app.router.add_route("PATCH", rf"/{{path:.+}}/{kind}/{{resource}}", self.patch)
            app.router.add_route("DELETE", rf"/{{path:.+}}/{kind}/{{resource}}", self.delete)
            app.router.add_route("OPTIONS", rf"/{{path:.+}}/{kind}/{{resource}}", self.options)

    def _cors(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Access-Control-Allow-Origin": self.server.config.http.cors_origin,
            "Access-Control-Allow-Methods": "OPTIONS, POST, PATCH, DELETE",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch",
        }
        if extra:
            headers.update(extra)
        return headers

    def _links(self) -> list[str]:
        links = []
        for server in self.server.config.webrtc.ice_servers:
            for url in server.urls:
                link = f'<{url}>; rel="ice-server"'
                if server.username is not None:
                    link += f'; username="{server.username}"; credential="{server.credential or ""}"'
                    link += '; credential-type="password"'
                links.append(link)
        return links

    async def options(self, request: web.Request) -> web.Response:
        headers = self._cors({"Accept-Post": "application/sdp"})
        response = web.Response(status=204, headers=headers)
        for link in self._links():
            response.headers.add("Link", link)
        return response

    async def post(self, request: web.Request) -> web.Response:
        kind = request.path.rsplit("/", 1)[1]
        config = self.server.config.webrtc
        if request.content_type != "application/sdp":
            return self._error(415, "the offer must be sent as Content-Type: application/sdp")
        if request.content_length is not None and request.content_length > config.max_offer_bytes:
            return self._error(413, f"SDP offer over {config.max_offer_bytes} bytes")
        body = await request.content.read(config.max_offer_bytes + 1)
        if len(body) > config.max_offer_bytes:
            return self._error(413, f"SDP offer over {config.max_offer_bytes} bytes")
        hub = self.server.hub
        session = Session("webrtc", remote_of(request), query=request.query_string)
        if not hub.add_session(session):
            return self._error(503, "too many connections")
        path = request.match_info["path"]
        published: tuple[Offer, Peer, LocalIce, Answer] | None = None
        if kind == "whip":
            # A WHIP offer is checked before the path is taken: a bad one must not end a stream
            # whose publisher is in its grace period.
            try:
                offer, peer, local = self._transport_for(body, session)
                published = (offer, peer, local, answer_publish(offer, PUBLISH_CODECS, local))
            except SdpNegotiationError as exc:
                return self._unusable(kind, path, session, exc)
        try:
            if kind == "whip":
                stream = await hub.publish(path, session, credentials_of(request))
            else:
                stream = await self._ready(await hub.read(path, session, credentials_of(request)))
        except Refused as refused:
            session.close_reason = f"refused: {refused}"
            hub.read_ended(session)
            hub.remove_session(session)
            response = refusal(refused)
            response.headers.update(self._cors())
            return response
        except BaseException:
            session.close_reason = "closed before the session started"
            hub.remove_session(session)
            raise
        try:
            if published is not None:
                offer, peer, local, answer = published
                peer.handler = WhipPublisher(peer, stream, answer.media, self.server)
            else:
                offer, peer, local = self._transport_for(body, session)
                answer, fanout = self._play_answer(offer, stream, local)
                peer.handler = WhepPlayer(peer, stream, answer.media, fanout, self.server)
            peer.start_dtls(answer.dtls_role)
        except (SdpNegotiationError, RtpError) as exc:
            if kind == "whip":
                hub.unpublish(stream, session, grace=0)
            return self._unusable(kind, path, session, exc)
        resource = peer.resource
        session.kick = peer.close
        self.transport.add(peer)
        log.info(
            "session start id=%s protocol=webrtc (%s) remote=%s path=%s",
            session.id,
            kind.upper(),
            session.remote,
            stream.path,
        )
        location = f"/{stream.path}/{kind}/{resource}"
        headers = self._cors(
            {
                "Content-Type": "application/sdp",
                "Location": location,
                "ETag": f'"{peer.ufrag}"',
                "Accept-Patch": "application/trickle-ice-sdpfrag",
            }
        )
        response = web.Response(status=201, body=answer.sdp.encode(), headers=headers)
        for link in self._links():
            response.headers.add("Link", link)
        return response

    def _transport_for(self, body: bytes, session: Session) -> tuple[Offer, Peer, LocalIce]:
        offer = parse_offer(body, self.server.config.webrtc.max_offer_bytes)
        peer = Peer(self.transport, session, offer.ice.ufrag, offer.ice.fingerprint)
        local = LocalIce(
            peer.ufrag, peer.pwd, self.transport.cert.fingerprint, tuple(self.transport.candidates())
        )
        return offer, peer, local

    def _unusable(self, kind: str, path: str, session: Session, exc: Exception) -> web.Response:
        reason = f"unusable SDP offer: {exc}"
        log.info("%s %s from %s refused: %s", kind.upper(), path, session.remote, reason)
        session.close_reason = reason
        self.server.hub.read_ended(session)
        self.server.hub.remove_session(session)
        return self._error(400, reason)

    async def _ready(self, stream: Stream) -> Stream:
        """The stream for WebRTC playback, once a just-started publisher has sent its video config.

        Only a publisher younger than TRACKS_WAIT is waited for: an audio-only stream that has
        been live a while gets its answer at once.
        """
        publisher = stream.publisher
        deadline = publisher.started_mono + TRACKS_WAIT if publisher is not None else 0.0
        while not stream.ended and time.monotonic() < deadline:
            video = [t for t in stream.tracks if t.kind == "video"]
            if video and all(t.config or t.codec in ("vp8", "mjpeg") for t in video):
                break
            await asyncio.sleep(0.05)
        if stream.ended:
            raise Refused("not_found", f"stream {stream.path!r} ended")
        return stream.readable_with(WEBRTC_AUDIO)

    def _play_answer(self, offer: Offer, stream: Stream, local: LocalIce) -> tuple[Answer, Fanout]:
        fanout = self.fanouts.get(stream)
        if fanout is None:
            config = self.server.config.webrtc
            fanout = Fanout(stream, config.nack_history, config.mtu)
        send = [
            SendTrack(
                track.kind, (track.codec,), fanout.ssrcs[index], track, "streamhive", f"{track.kind}{index}"
            )
            for index, track in enumerate(stream.tracks)
            if index in fanout.ssrcs
        ]
        if not send:
            raise SdpNegotiationError(f"{stream.path!r} has no tracks yet")
        answer = answer_play(offer, send, local)
        self.fanouts[stream] = fanout
        return answer, fanout

    def _peer(self, request: web.Request) -> Peer | None:
        peer = self.transport.resources.get(request.match_info["resource"])
        if peer is None or peer.closed:
            return None
        return peer

    async def patch(self, request: web.Request) -> web.Response:
        peer = self._peer(request)
        if peer is None:
            return self._error(404, "no such WebRTC session")
        if request.content_type != "application/trickle-ice-sdpfrag":
            return self._error(415, "PATCH takes application/trickle-ice-sdpfrag")
        body = (await request.content.read(16384)).decode("utf-8", "replace")
        for line in body.splitlines():
            if line.startswith("a=ice-ufrag:") and line[12:].strip() != peer.ice.remote_ufrag:
                return self._error(405, "ICE restarts are not supported: start a new session")
        # ICE-lite: we learn the client's addresses from its checks; candidates add nothing.
        return web.Response(status=204, headers=self._cors())

    async def delete(self, request: web.Request) -> web.Response:
        peer = self._peer(request)
        if peer is None:
            return self._error(404, "no such WebRTC session")
        peer.close("client ended the session (DELETE)")
        return web.Response(status=200, headers=self._cors())

    def _error(self, status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status, headers=self._cors())
