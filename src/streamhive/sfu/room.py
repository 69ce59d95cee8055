"""Rooms, participants, published tracks and subscriptions: the forwarding half of the SFU.

A participant has two PeerConnections on the shared WebRTC transport (servers/webrtc.py): its
publish connection's handler is a :class:`Publisher`, its subscribe connection's a
:class:`Subscriber`. A packet from a publisher is looked up by SSRC (bound on first sight from
its mid/rid header extensions), metered per simulcast layer, and handed to each
:class:`Subscription` of its track, which decides whether its subscriber gets this layer,
rewrites SSRC, sequence number and timestamp on the bytes (sfu/rewrite.py) and sends it. Nothing
here decodes media: keyframes are recognised from the payload's first bytes (sfu/keyframes.py).

Feedback is terminated per leg: subscribers' NACKs are answered from each subscription's own
history of what it sent; their PLI/FIR become one throttled PLI to the layer they watch, repeated
until a keyframe comes; their REMB and receiver reports feed the bandwidth estimate that picks
their layer. Publishers get our NACKs for their video, PLIs, receiver reports and a REMB.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..formats.rtp import RtpError, codec_for_encoding
from ..formats.rtp.nack import NackTracker, RtpHistory
from ..formats.rtp.rtcp import (
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    ReceiverStats,
    Remb,
    SenderReport,
    ntp_middle32,
    parse_compound,
    serialize_compound,
    unix_to_ntp,
)
from ..protocols.webrtc.sdp import URI_AUDIO_LEVEL, URI_MID, URI_REPAIRED_RID, URI_RID, NegotiatedMedia
from .keyframes import is_keyframe
from .rewrite import Rewriter
from .rtp_ext import audio_level, extension_span, extensions
from .simulcast import BandwidthEstimate, LayerMeter, LayerSelector
from .speaker import SpeakerDetector

if TYPE_CHECKING:
    from ..config import RoomsConfig
    from ..servers.datachannel import DataChannels
    from ..servers.webrtc import Peer
    from .grants import RoomGrant

log = logging.getLogger("streamhive.rooms")

#: Our SSRC in the RTCP we send publishers ("STRM").
FEEDBACK_SSRC = 0x5354524D
#: Seconds between keyframe requests to one layer of a publisher.
KEYFRAME_INTERVAL = 0.5
#: Seconds between receiver reports + REMB to publishers and sender reports to subscribers.
REPORT_INTERVAL = 1.0
#: Seconds between decisions of which simulcast layers publishers should send.
LAYERS_INTERVAL = 1.0
#: Seconds between simulcast layer decisions per subscriber.
SELECT_INTERVAL = 0.5
#: What a subscriber's bandwidth split sets aside for each track without simulcast (bit/s).
FIXED_TRACK_BITRATE = 64_000
#: Offers one participant may make per connection: a burst, then this many a second.
OFFER_BURST = 10
OFFERS_PER_SECOND = 2.0
#: Retransmissions one subscriber may get per second (a NACK storm must not become a flood).
MAX_RESENDS_PER_SECOND = 300
#: Known simulcast rid namings, lowest layer first: the SDK's (and LiveKit's) quarter/half/full,
#: and low/medium/high (Chrome's WHIP examples, Janus).
_RID_SCHEMES = (("q", "h", "f"), ("l", "m", "h"))
_SEQ = struct.Struct("!H")


def layer_order(rids: list[str]) -> list[str]:
    """The rids lowest layer first: by a known naming when all rids follow one, else the reverse
    of the offer's order (clients list their preferred, normally highest, stream first)."""
    for scheme in _RID_SCHEMES:
        if set(rids) <= set(scheme):
            return sorted(rids, key=scheme.index)
    return rids[::-1]


class Layer:
    """One simulcast stream of a published track (the only one without simulcast)."""

    __slots__ = (
        "index", "rid", "ssrc", "meter", "nack", "history", "stats", "keyframes", "keyframe_wanted", "seen",
        "last_pli",
    )  # fmt: skip

    def __init__(self, index: int, rid: str, history: int) -> None:
        self.index = index
        self.rid = rid
        self.ssrc: int | None = None
        self.meter = LayerMeter()
        self.nack = NackTracker()
        #: What came in, for every subscriber's NACKs (Rewriter.resend maps their numbers here).
        self.history = RtpHistory(history)
        #: Reception statistics for our receiver reports (loss, jitter, LSR/DLSR).
        self.stats = ReceiverStats()
        self.keyframes = 0
        self.keyframe_wanted = False
        self.seen = 0  # keyframes when the current request began
        self.last_pli = -KEYFRAME_INTERVAL


class PublishedTrack:
    """A track a participant publishes, and everyone subscribed to it."""

    def __init__(
        self,
        participant: Participant,
        source: str,
        media: NegotiatedMedia,
        info: dict[str, Any],
        history: int,
    ) -> None:
        self.participant = participant
        self.source = source
        self.id = f"{participant.identity}/{source}"
        self.media = media
        self.kind = media.kind
        self.codec = media.codec
        self.clock_rate = media.fmt.clock_rate
        codec = codec_for_encoding(media.fmt.encoding)
        assert codec is not None  # answer_publish accepts only formats we have a payload format for
        #: The hub's description of it, for matching a subscriber's payload type to its profile.
        self.track = codec.track_from_sdp(media.fmt)
        rids = layer_order(media.rids) if media.rids else [""]
        self.layers = [Layer(i, rid, history if media.kind == "video" else 1) for i, rid in enumerate(rids)]
        self.width = _dimension(info.get("width"))
        self.height = _dimension(info.get("height"))
        self.muted = False
        self.subscriptions: list[Subscription] = []
        #: The rids last asked of the publisher (``layers`` event); None until asked.
        self.active_rids: list[str] | None = None

    @property
    def simulcast(self) -> bool:
        return len(self.layers) > 1

    def heights(self) -> list[int | None]:
        """Each layer's height, assuming each is half the next (the SDK's scaleResolutionDownBy)."""
        top = len(self.layers) - 1
        return [self.height >> (top - i) if self.height else None for i in range(len(self.layers))]

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "codec": self.codec,
            "muted": self.muted,
            "width": self.width,
            "height": self.height,
            "simulcast": self.simulcast,
        }

    def layers_needed(self, bridged: bool) -> list[str]:
        """The rids someone may watch: up to the tallest any subscriber's size allows (all of
        them for a subscriber that asked no size, the top one for a bridge), at least the lowest.
        Layers above are paused at the publisher: its encoder and uplink are spared them."""
        heights = self.heights()
        top = len(self.layers) - 1
        highest = top if bridged else 0
        for subscription in self.subscriptions:
            if subscription.paused:
                continue
            wanted = subscription.max_height
            fitting = [i for i, h in enumerate(heights) if wanted is None or h is None or h <= wanted]
            highest = max(highest, fitting[-1] if fitting else 0)
            if highest == top:
                break
        return [layer.rid for layer in self.layers[: highest + 1]]

    def packet(self, layer: int, seq: int) -> bytes | None:
        """A packet of one layer still in its history (for ``Rewriter.resend``)."""
        return self.layers[layer].history.get(seq) if 0 <= layer < len(self.layers) else None

    def request_keyframe(self, layer: int | None = None) -> None:
        """Ask the publisher for a keyframe on one layer (every layer when None), until one comes."""
        for item in self.layers if layer is None else self.layers[layer : layer + 1]:
            if not item.keyframe_wanted:
                item.keyframe_wanted = True
                item.seen = item.keyframes


def _dimension(value: object) -> int | None:
    return value if isinstance(value, int) and 0 < value <= 16384 else None


class Publisher:
    """The handler of a participant's publish PeerConnection."""

    def __init__(self, participant: Participant, peer: Peer) -> None:
        self.participant = participant
        self.peer = peer
        self.by_mid: dict[str, PublishedTrack] = {}
        self.by_ssrc: dict[int, tuple[PublishedTrack, Layer, bool]] = {}  # ssrc -> (track, layer, is RTX)
        self.ext: dict[str, int] = {}
        self.next_report = 0.0
        #: The data channels of the publish connection, when the client opened its SCTP section.
        self.channels: DataChannels | None = None
        self.bridge: Callable[[PublishedTrack, bytes, float], None] | None = None
        self.bridge_report: Callable[[PublishedTrack, SenderReport, float], None] | None = None

    def set_tracks(self, tracks: list[PublishedTrack]) -> None:
        """The tracks of the latest negotiation; SSRC bindings of removed ones are forgotten."""
        self.by_mid = {track.media.mid: track for track in tracks}
        self.by_ssrc = {s: entry for s, entry in self.by_ssrc.items() if entry[0] in tracks}
        self.ext = {}
        for track in tracks:
            for uri, number in track.media.extmap.items():
                self.ext.setdefault(uri, number)

    # Peer handler ------------------------------------------------------------------------------
    def connected(self) -> None:
        if self.channels is not None:
            self.channels.start()
        for track in self.by_mid.values():
            if track.kind == "video":
                track.request_keyframe()

    def rtp(self, packet: bytes, now: float) -> None:
        if len(packet) < 12:
            return
        ssrc = int.from_bytes(packet[8:12], "big")
        entry = self.by_ssrc.get(ssrc)
        if entry is None:
            entry = self._bind(packet, ssrc)
            if entry is None:
                return
        track, layer, rtx = entry
        try:
            start, payload_at = extension_span(packet)  # one header check for everything below
        except RtpError:
            self.peer.service.counters["room_malformed_rtp"] += 1
            return
        if rtx:
            packet = self._unwrap(packet, packet[payload_at:], track, layer)
            if not packet:
                return
            start = payload_at = 12
        elif start != payload_at:
            if track.kind == "audio" and URI_AUDIO_LEVEL in self.ext:
                self._audio_level(packet, now)
            # Stripped once here rather than by every subscriber's rewrite: subscribers never get
            # the publisher's extension ids (its mid would mislead their demultiplexing).
            packet = bytes((packet[0] & 0xEF,)) + packet[1:start] + packet[payload_at:]
            payload_at = start
        seq = _SEQ.unpack_from(packet, 2)[0]
        layer.meter.packet(len(packet), now)
        layer.stats.update(seq, int.from_bytes(packet[4:8], "big"), int(now * track.clock_rate))
        keyframe = False
        if track.kind == "video":
            layer.nack.packet(seq, now)
            layer.history.add(seq, packet)
            # A retransmission is not where a subscriber may start: newer packets went out already.
            keyframe = not rtx and is_keyframe(track.codec, packet[payload_at:])
            if keyframe:
                layer.keyframes += 1
        if track.muted:
            return
        for subscription in track.subscriptions:
            subscription.forward(packet, layer, keyframe, now)
        if self.bridge is not None and layer.index == len(track.layers) - 1:
            self.bridge(track, packet, now)

    def _bind(self, packet: bytes, ssrc: int) -> tuple[PublishedTrack, Layer, bool] | None:
        """Which track and layer a new SSRC is: its mid and rid header extensions say (RFC 8843,
        RFC 8852), else the payload type when one section uses it."""
        try:
            values = extensions(packet) if packet[0] & 0x10 else {}
        except RtpError:
            return None
        pt = packet[1] & 0x7F
        track: PublishedTrack | None = None
        mid_id = self.ext.get(URI_MID)
        if mid_id is not None and mid_id in values:
            track = self.by_mid.get(values[mid_id].decode("ascii", "replace"))
        if track is None:
            matching = [
                t for t in self.by_mid.values() if pt in (t.media.payload_type, t.media.rtx_payload_type)
            ]
            if len(matching) != 1:
                return None
            track = matching[0]
        rtx = pt == track.media.rtx_payload_type and pt != track.media.payload_type
        if pt != track.media.payload_type and not rtx:
            return None
        layer = track.layers[0]
        if track.simulcast:
            rid_id = self.ext.get(URI_REPAIRED_RID if rtx else URI_RID)
            if rid_id is None or rid_id not in values:
                return None  # wait for a packet that names its layer
            rid = values[rid_id].decode("ascii", "replace")
            found = next((item for item in track.layers if item.rid == rid), None)
            if found is None:
                return None
            layer = found
        if not rtx:
            layer.ssrc = ssrc
        entry = (track, layer, rtx)
        if len(self.by_ssrc) < 64:  # bounded: a client cycling SSRCs cannot grow the table
            self.by_ssrc[ssrc] = entry
        return entry

    def _unwrap(self, packet: bytes, payload: bytes, track: PublishedTrack, layer: Layer) -> bytes:
        """The original packet inside an RTX one (RFC 4588); empty for padding-only probes."""
        if layer.ssrc is None or len(payload) < 3:
            return b""
        if packet[0] & 0x20:  # padding: drop it with the rest of the RTX framing
            pad = packet[-1]
            if pad >= len(payload) - 2:
                return b""
            payload = payload[: len(payload) - pad]
        self.peer.service.counters["room_rtx_from_publishers"] += 1
        header = bytearray(packet[:12])
        header[0] &= 0xC0  # version only: no padding, extension or CSRCs (all after the header)
        header[1] = (header[1] & 0x80) | track.media.payload_type
        header[2:4] = payload[:2]
        header[8:12] = layer.ssrc.to_bytes(4, "big")
        return bytes(header) + payload[2:]

    def _audio_level(self, packet: bytes, now: float) -> None:
        try:
            value = extensions(packet).get(self.ext[URI_AUDIO_LEVEL])
        except RtpError:
            return
        if value:
            level, _voice = audio_level(value)
            room = self.participant.room
            room.speakers.level(self.participant.identity, level, now)

    def rtcp(self, packet: bytes, now: float) -> None:
        try:
            items = parse_compound(packet)
        except RtpError:
            return
        for item in items:
            if isinstance(item, SenderReport):
                entry = self.by_ssrc.get(item.ssrc)
                if entry is None or entry[2]:
                    continue
                track, layer, _rtx = entry
                layer.stats.sender_report_received(ntp_middle32(item.ntp_timestamp), now)
                if self.bridge_report is not None and layer.index == len(track.layers) - 1:
                    self.bridge_report(track, item, now)

    def tick(self, now: float) -> None:
        feedback: list[object] = []
        counters = self.peer.service.counters
        for track in self.by_mid.values():
            for layer in track.layers:
                if layer.ssrc is None:
                    continue
                lost = layer.nack.due(now)
                if lost:
                    feedback.append(Nack(FEEDBACK_SSRC, layer.ssrc, lost))
                    counters["room_nacked_to_publishers"] += len(lost)
                if layer.keyframe_wanted and layer.keyframes != layer.seen:
                    layer.keyframe_wanted = False
                if layer.keyframe_wanted and now - layer.last_pli >= KEYFRAME_INTERVAL:
                    layer.last_pli = now
                    feedback.append(Pli(FEEDBACK_SSRC, layer.ssrc))
                    counters["room_keyframe_requests"] += 1
        if now >= self.next_report:
            self.next_report = now + REPORT_INTERVAL
            layers = [layer for t in self.by_mid.values() for layer in t.layers if layer.ssrc is not None]
            ssrcs = [layer.ssrc for layer in layers if layer.ssrc is not None]
            if ssrcs:
                blocks = tuple(layer.stats.report_block(layer.ssrc, now) for layer in layers if layer.ssrc)
                feedback.append(ReceiverReport(FEEDBACK_SSRC, blocks[:31]))
                bitrate = self.participant.room.config_publish_bitrate
                feedback.append(Remb(FEEDBACK_SSRC, bitrate, ssrcs))
        if feedback:
            self.peer.send_rtcp(serialize_compound(feedback))  # type: ignore[arg-type]

    def closed(self, reason: str) -> None:
        if self.channels is not None:
            self.channels.close()
        self.participant.peer_closed("publish", reason)


class Subscription:
    """One track sent to one subscriber: its layer choice, rewriter and retransmission history."""

    def __init__(self, subscriber: Subscriber, track: PublishedTrack, ssrc: int) -> None:
        self.subscriber = subscriber
        self.track = track
        self.ssrc = ssrc
        self.mid = ""
        self.payload_type = track.media.payload_type
        self.rewriter = Rewriter(ssrc, self.payload_type, track.clock_rate)
        self.selector = LayerSelector() if track.simulcast else None
        self.max_height: int | None = None
        self.paused = False
        #: Video starts at a keyframe (the selector does this for simulcast tracks).
        self.started = track.kind != "video" or track.simulcast
        self.last_layer: int | None = None
        self.packets = 0
        self.octets = 0
        self.last_ts = 0
        self.last_sent = 0.0

    def set_payload_type(self, payload_type: int) -> None:
        if payload_type != self.payload_type:
            self.payload_type = payload_type
            self.rewriter = Rewriter(self.ssrc, payload_type, self.track.clock_rate)

    def forward(self, packet: bytes, layer: Layer, keyframe: bool, now: float) -> None:
        if self.paused:
            return
        selector = self.selector
        if selector is not None and not selector.accept(layer.index, keyframe):
            return
        if not self.started:
            if not keyframe:
                return
            self.started = True
        out = self.rewriter.rewrite(packet, layer.index, now)
        if out is None:
            return
        self.packets += 1
        self.octets += len(out) - 12
        self.last_ts = int.from_bytes(out[4:8], "big")
        self.last_sent = now
        self.subscriber.peer.queue_rtp(out)

    def request_keyframe(self) -> None:
        """A keyframe of the layer this subscriber gets (or will get) starts or repairs its video."""
        if self.track.kind == "video":
            self.track.request_keyframe(self.current_layer())

    def resend(self, seq: int) -> bytes | None:
        """What was sent as ``seq``, rebuilt from the publisher layer's history (for a NACK)."""
        return self.rewriter.resend(seq, self.track.packet)

    def set_paused(self, paused: bool, now: float) -> None:
        if paused != self.paused:
            self.paused = paused
            if not paused:
                self.restart(now)

    def restart(self, now: float) -> None:
        """Forwarding resumes after a pause or a mute: a new run (no gap the subscriber would NACK)
        starting at a keyframe."""
        self.rewriter.cut(now)
        if self.track.kind == "video":
            if self.selector is not None:
                self.selector.current = None
            else:
                self.started = False
            self.request_keyframe()

    def detach(self) -> None:
        """Stop forwarding this track to this subscriber, everywhere it is referenced."""
        if self in self.track.subscriptions:
            self.track.subscriptions.remove(self)
        subscriber = self.subscriber
        if subscriber.by_ssrc.get(self.ssrc) is self:
            del subscriber.by_ssrc[self.ssrc]
        participant = subscriber.participant
        if participant.subscriptions.get(self.track.id) is self:
            del participant.subscriptions[self.track.id]

    def current_layer(self) -> int:
        selector = self.selector
        if selector is None:
            return 0
        current = selector.current
        return current if current is not None else selector.target

    def select(self, bandwidth: int | None, now: float) -> None:
        """Pick the layer that fits this subscriber's size and its share of the bandwidth; ask for
        that layer's keyframe (not while nothing is forwarded: paused or muted)."""
        selector = self.selector
        if selector is None:
            return
        track = self.track
        bitrates = [layer.meter.bitrate(now) for layer in track.layers]
        active = [layer.meter.active(now) for layer in track.layers]
        selector.choose(track.heights(), bitrates, active, self.max_height, bandwidth, now)
        if selector.wants_keyframe and not self.paused and not track.muted:
            track.request_keyframe(selector.target)
        if selector.current is not None and selector.current != self.last_layer:
            self.last_layer = selector.current
            self.subscriber.participant.send({"type": "layer", "track": track.id, "layer": selector.current})

    def sender_report(self, now: float) -> SenderReport | None:
        if not self.packets:
            return None
        elapsed = max(0.0, now - self.last_sent)
        rtp_ts = (self.last_ts + int(elapsed * self.track.clock_rate)) & 0xFFFFFFFF
        return SenderReport(
            self.ssrc, unix_to_ntp(time.time()), rtp_ts, self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF
        )


class Subscriber:
    """The handler of a participant's subscribe PeerConnection."""

    def __init__(self, participant: Participant, peer: Peer) -> None:
        self.participant = participant
        self.peer = peer
        self.by_ssrc: dict[int, Subscription] = {}
        self.bandwidth = BandwidthEstimate()
        self.next_select = 0.0
        self.next_report = 0.0
        self.resend_window = 0.0
        self.resends = 0
        self.lost_fraction = 0.0

    def set_subscriptions(self, subscriptions: list[Subscription]) -> None:
        self.by_ssrc = {s.ssrc: s for s in subscriptions}

    def connected(self) -> None:
        for subscription in self.by_ssrc.values():
            subscription.request_keyframe()

    def rtp(self, packet: bytes, now: float) -> None:
        """Subscribers send no media."""

    def rtcp(self, packet: bytes, now: float) -> None:
        try:
            items = parse_compound(packet)
        except RtpError:
            return
        for item in items:
            if isinstance(item, Nack):
                self._resend(item, now)
            elif isinstance(item, (Pli, Fir)):
                ssrcs = [item.media_ssrc] if isinstance(item, Pli) else [e[0] for e in item.entries]
                for ssrc in ssrcs:
                    subscription = self.by_ssrc.get(ssrc)
                    if subscription is not None:
                        subscription.request_keyframe()
            elif isinstance(item, Remb):
                self.bandwidth.remb(item.bitrate, now)
            elif isinstance(item, ReceiverReport):
                mine = [block for block in item.reports if block.ssrc in self.by_ssrc]
                if mine:
                    self.lost_fraction = max(block.fraction_lost for block in mine) / 256
                    self.bandwidth.loss(self.lost_fraction, now)

    def _resend(self, nack: Nack, now: float) -> None:
        subscription = self.by_ssrc.get(nack.media_ssrc)
        if subscription is None or subscription.track.kind != "video":
            return
        if now - self.resend_window >= 1.0:
            self.resend_window, self.resends = now, 0
        counters = self.peer.service.counters
        for seq in nack.lost:
            if self.resends >= MAX_RESENDS_PER_SECOND:
                counters["room_resends_capped"] += 1
                return
            packet = subscription.resend(seq)
            if packet is None:
                counters["room_nack_misses"] += 1
                continue
            self.resends += 1
            counters["room_resent"] += 1
            self.peer.send_rtp(packet)

    def tick(self, now: float) -> None:
        if now >= self.next_select:
            self.next_select = now + SELECT_INTERVAL
            subscriptions = list(self.by_ssrc.values())
            video = [s for s in subscriptions if s.selector is not None and not s.paused]
            share = self._video_share(len(subscriptions) - len(video), len(video), now)
            for subscription in video:
                subscription.select(share, now)
        if now >= self.next_report:
            self.next_report = now + REPORT_INTERVAL
            reports = [r for s in self.by_ssrc.values() if (r := s.sender_report(now)) is not None]
            if reports:
                self.peer.send_rtcp(serialize_compound(reports))

    def _video_share(self, others: int, videos: int, now: float) -> int | None:
        """The estimate split evenly between simulcast videos, after audio and single-layer tracks
        (their rate cannot be chosen) take what they need: one REMB covers the connection."""
        total = self.bandwidth.value(now)
        if total is None or not videos:
            return None
        return max(0, total - others * FIXED_TRACK_BITRATE) // videos

    def closed(self, reason: str) -> None:
        self.participant.peer_closed("subscribe", reason)


class Participant:
    """Someone in a room: their grant, their signaling channel and their two connections."""

    def __init__(
        self,
        room: Room,
        grant: RoomGrant,
        send: Callable[[dict[str, Any]], None],
        close: Callable[[int, str], None],
    ) -> None:
        self.room = room
        self.grant = grant
        self.identity = grant.identity
        self.name = grant.name
        self.send = send
        self._close = close
        self.joined = time.monotonic()
        self.publish_peer: Peer | None = None
        self.subscribe_peer: Peer | None = None
        self.publisher: Publisher | None = None
        self.subscriber: Subscriber | None = None
        self.tracks: dict[str, PublishedTrack] = {}  # source -> track
        self.subscriptions: dict[str, Subscription] = {}  # track id -> subscription
        self.quality = "good"
        self.left = False
        self._window = 0.0
        self._messages = 0
        self._offers: dict[str, tuple[float, float]] = {}  # pc -> (tokens, when)

    def allow_offer(self, pc: str, now: float) -> bool:
        """A token bucket per connection: every publish renegotiation makes each subscriber
        renegotiate too, so a storm of offers would multiply through the room."""
        tokens, since = self._offers.get(pc, (OFFER_BURST, now))
        tokens = min(OFFER_BURST, tokens + (now - since) * OFFERS_PER_SECOND)
        if tokens < 1:
            self._offers[pc] = (tokens, now)
            return False
        self._offers[pc] = (tokens - 1, now)
        return True

    def count_message(self, now: float, rate: float) -> bool:
        """Count one message (signaling or data channel); False past twice ``rate`` in a second."""
        if now - self._window >= 1.0:
            self._window, self._messages = now, 0
        self._messages += 1
        return self._messages <= 2 * rate

    def info(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "name": self.name,
            "tracks": [track.info() for track in self.tracks.values()],
        }

    def peer_closed(self, pc: str, reason: str) -> None:
        """A PeerConnection ended (timeout, consent lost, DTLS closed): the participant goes too."""
        if not self.left:
            code = 4008 if "did not complete" in reason else 1011
            self.close(code, f"{pc} connection closed: {reason}")

    def close(self, code: int, reason: str) -> None:
        self._close(code, reason)

    def quality_now(self) -> str:
        lost = self.subscriber.lost_fraction if self.subscriber is not None else 0.0
        return "good" if lost < 0.02 else "fair" if lost < 0.1 else "poor"


class Room:
    """The participants of one room and the events between them."""

    def __init__(self, name: str, config: RoomsConfig, publish_bitrate: int) -> None:
        self.name = name
        self.config = config
        self.config_publish_bitrate = publish_bitrate
        self.participants: dict[str, Participant] = {}
        self.speakers = SpeakerDetector(config.speaker_interval)
        self.active_speakers: list[str] = []
        self.next_layers = 0.0
        self.created = time.time()
        self.empty_since: float | None = time.monotonic()

    def broadcast(self, event: dict[str, Any], exclude: Participant | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant is not exclude and not participant.left:
                participant.send(event)

    def tracks(self) -> dict[str, PublishedTrack]:
        return {t.id: t for p in self.participants.values() for t in p.tracks.values()}

    def publishers(self) -> int:
        return sum(1 for p in self.participants.values() if p.tracks)

    def add(self, participant: Participant) -> None:
        self.participants[participant.identity] = participant
        self.empty_since = None
        self.broadcast({"type": "participant_joined", "participant": participant.info()}, exclude=participant)

    def remove(self, participant: Participant, reason: str) -> None:
        if self.participants.get(participant.identity) is not participant:
            return
        del self.participants[participant.identity]
        for track in participant.tracks.values():
            for subscription in list(track.subscriptions):
                subscription.detach()
        for subscription in list(participant.subscriptions.values()):
            subscription.detach()
        self.speakers.remove(participant.identity)
        if participant.identity in self.active_speakers:
            self.active_speakers.remove(participant.identity)
        self.broadcast({"type": "participant_left", "identity": participant.identity, "reason": reason})
        if not self.participants:
            self.empty_since = time.monotonic()

    def tick(self, now: float) -> None:
        if now >= self.next_layers:
            self.next_layers = now + LAYERS_INTERVAL
            self._ask_layers()
        speakers = self.speakers.decide(now)
        if speakers is not None:
            self.active_speakers = [s for s in speakers if s in self.participants]
            self.broadcast({"type": "active_speaker", "speakers": self.active_speakers})
            if self.config.last_n:
                self._apply_last_n(now)
        for participant in list(self.participants.values()):
            quality = participant.quality_now()
            if quality != participant.quality:
                participant.quality = quality
                self.broadcast({"type": "quality", "identity": participant.identity, "quality": quality})

    def _ask_layers(self) -> None:
        """Tell each simulcast publisher which layers to send (``layers`` event), on change."""
        for participant in self.participants.values():
            bridged = participant.publisher is not None and participant.publisher.bridge is not None
            for track in participant.tracks.values():
                if not track.simulcast:
                    continue
                rids = track.layers_needed(bridged)
                if rids != track.active_rids:
                    track.active_rids = rids
                    participant.send({"type": "layers", "track": track.id, "active": rids})

    def _apply_last_n(self, now: float) -> None:
        """Forward video of the N most recent speakers only (and of anyone sharing a screen)."""
        keep = set(self.active_speakers[: self.config.last_n])
        for participant in self.participants.values():
            for subscription in participant.subscriptions.values():
                track = subscription.track
                if track.source == "camera":
                    paused = track.participant.identity not in keep and bool(self.active_speakers)
                    subscription.set_paused(paused, now)
