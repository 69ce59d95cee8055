"""WebRTC offer/answer for WHIP (the client publishes) and WHEP (the client plays), sans-IO.

The server is an ICE-lite agent with one port for everything, so an answer always BUNDLEs every
section it accepts onto one transport with rtcp-mux, offers host candidates only, and is the DTLS
server (``a=setup:passive``) unless the offer insists on being the server itself (FFmpeg's WHIP
muxer says ``setup:passive`` and listens), in which case we answer ``active``.

We negotiate no FEC, and RTX only from WHIP publishers (to players a NACKed packet is resent on
its original SSRC), and only the RTCP feedback and RTP header extensions in :data:`FEEDBACK` and
:data:`EXTENSIONS`. The offer is
parsed with the project's generic SDP parser; this module adds what WebRTC layers on top of it:
ICE and DTLS parameters, mids and BUNDLE, SSRCs, rids and simulcast, extmaps and rtcp-fb.

Sections we cannot use are not errors by themselves: one that cannot share our transport (no mid,
outside BUNDLE, no rtcp-mux, not DTLS-SRTP) is rejected with port 0; one that
could but has no codec or track for us is answered ``a=inactive`` inside the BUNDLE group (a
port-0 section would cost aiortc a transport of its own that never connects). Every such decision
is reported with its reason, and only an offer with nothing usable at all raises.

Data channels (``m=application ... webrtc-datachannel``, RFC 8841) ride the same DTLS transport
as SCTP. WHIP and WHEP reject them with port 0; rooms ask for one (``datachannel=True``) and get
the first bundled data channel section answered with our SCTP port and message size limit
(servers/datachannel.py runs the association). Clients still offering the pre-RFC form
(``DTLS/SCTP 5000`` with ``a=sctpmap``) are answered in that form.

Checked against Chromium 156 (WHIP with and without simulcast, WHEP with an inactive section and
with a rejected data channel), FFmpeg 8.1's WHIP muxer and aiortc (see tests/unit/test_webrtc_sdp.py).
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ...formats.rtp import SdpFormat, codec_for_encoding, codec_for_track
from ...formats.sdp import Attribute, Connection, MediaDescription, SdpError, SessionDescription, parse_sdp
from ...hub.frame import Track
from . import WebRtcError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "EXTENSIONS",
    "MAX_MESSAGE_SIZE",
    "SCTP_PORT",
    "URI_ABS_SEND_TIME",
    "URI_AUDIO_LEVEL",
    "URI_MID",
    "URI_REPAIRED_RID",
    "URI_RID",
    "FEEDBACK",
    "Answer",
    "LocalIce",
    "NegotiatedMedia",
    "Offer",
    "OfferedMedia",
    "Rejection",
    "RemoteIce",
    "SctpParameters",
    "SdpNegotiationError",
    "SendTrack",
    "answer_play",
    "answer_publish",
    "parse_offer",
]

DEFAULT_MAX_BYTES = 65536
MAX_MEDIA = 16
MAX_CANDIDATES = 64

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#: Header extensions we answer when offered; others are left out of the answer, so the client
#: does not send them.
EXTENSIONS = (URI_MID, URI_RID, URI_REPAIRED_RID, URI_ABS_SEND_TIME, URI_AUDIO_LEVEL)
#: RTCP feedback we implement, in the order answers list it.
FEEDBACK = ("nack", "nack pli", "ccm fir", "goog-remb")

_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_FINGERPRINT_ALGORITHMS = ("sha-256", "sha-384", "sha-512", "sha-1", "sha-224")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z|~]{1,64}")  # RFC 8866 token, bounded
_RID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # RFC 8851 rid-id, bounded
_ICE_CREDENTIAL = re.compile(r"[!-9;-~]{1,256}")  # printable, no space or ':' (STUN USERNAME splits on ':')
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){15,63}")
_HEX6 = re.compile(r"[0-9A-Fa-f]{6}")
#: H.264 profiles (see _h264_profile) from least to most capable decoder: each contains the ones
#: before it (Baseline's FMO/ASO aside, which no encoder uses).
_H264_PROFILE_ORDER = ("constrained-baseline", "42", "4d", "constrained-high", "64", "6e", "7a", "f4")
_REPAIR_ENCODINGS = ("RTX", "RED", "ULPFEC", "FLEXFEC-03", "CN", "TELEPHONE-EVENT")
#: Per codec, the fmtp key naming the profile a decoder needs, and its RFC default: a browser
#: may refuse a bitstream of another profile than the payload type it arrives on says.
_PROFILE_KEYS = {"h265": ("profile-id", "1"), "vp9": ("profile-id", "0"), "av1": ("profile", "0")}

#: Data channels: our SCTP port, and the largest message we take (what browsers answer too).
SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 262144
#: RFC 8841 6: the largest message a client that announces no ``a=max-message-size`` takes.
DEFAULT_MAX_MESSAGE_SIZE = 65536
_SCTP_PROTOS = ("UDP/DTLS/SCTP", "TCP/DTLS/SCTP")
_LEGACY_SCTP_PROTO = "DTLS/SCTP"  # draft-ietf-mmusic-sctp-sdp-05: the port is the format


class SdpNegotiationError(WebRtcError):
    """The offer is malformed, oversized, lacks ICE/DTLS parameters, or has nothing we can use."""


@dataclass(slots=True)
class RemoteIce:
    """The client's transport parameters, from its BUNDLE-tagged section or the session level."""

    ufrag: str
    pwd: str
    fingerprint: str  # "sha-256 AB:CD:...": sha-256 when offered (every browser does), else the first
    setup: str  # "actpass", "active" or "passive"
    candidates: list[str] = field(default_factory=list)  # a=candidate values, for logging only


@dataclass(slots=True, frozen=True)
class SctpParameters:
    """What a client offered for its data channels (RFC 8841).

    ``port`` is its SCTP port (``a=sctp-port``, 5000 when absent, or the format of a legacy
    ``DTLS/SCTP`` line); ``max_message_size`` the largest message it takes, 0 meaning any size.
    """

    port: int
    max_message_size: int
    legacy: bool = False


@dataclass(slots=True)
class OfferedMedia:
    """One offered m-section, as far as WebRTC cares.

    ``problem`` says why the section cannot share our transport (None when it can);
    ``formats`` lists the payload types in offer order (the client's preference);
    ``ssrcs`` are the media SSRCs the client announced, without RTX/FEC repair SSRCs;
    ``rids`` are the simulcast streams it will send, in the order of its ``a=simulcast`` line;
    ``sctp`` is set on a well-formed data channel section (kind ``application``).
    """

    index: int
    kind: str
    mid: str | None
    direction: str
    proto: str
    formats: dict[int, SdpFormat]
    feedback: dict[int, set[str]]
    extmap: dict[str, int]
    ssrcs: list[int]
    rids: list[str]
    simulcast: bool
    rtcp_rsize: bool
    problem: str | None
    description: MediaDescription
    sctp: SctpParameters | None = None


@dataclass(slots=True)
class Offer:
    session: SessionDescription
    ice: RemoteIce
    media: list[OfferedMedia]
    bundle: list[str]  # mids of the offer's BUNDLE group; empty when it has none


@dataclass(slots=True, frozen=True)
class LocalIce:
    """Our side of the transport: credentials, certificate fingerprint and host candidates."""

    ufrag: str
    pwd: str
    fingerprint: str  # "sha-256 AB:CD:..."
    candidates: tuple[tuple[str, int, str], ...] = ()  # (address, port, "udp" | "tcp")

    def __post_init__(self) -> None:
        if not _ICE_CREDENTIAL.fullmatch(self.ufrag) or not _ICE_CREDENTIAL.fullmatch(self.pwd):
            raise ValueError("local ICE ufrag/pwd must be 1-256 printable characters without ':' or spaces")
        if _fingerprint(self.fingerprint) is None:
            raise ValueError(f"bad local DTLS fingerprint {self.fingerprint[:40]!r}")
        for host, port, protocol in self.candidates:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"local ICE candidate address {host!r} is not an IP address") from None
            if protocol not in ("udp", "tcp") or not 0 < port < 65536:
                raise ValueError(f"bad local ICE candidate {host} {port!r} {protocol!r}")


@dataclass(slots=True, frozen=True)
class SendTrack:
    """A hub track a WHEP client may receive.

    ``codecs`` are the hub codec names we can send it as, preferred first: the track's own codec,
    and whatever a transcoder can make of it (``("opus",)`` for an AAC track when AAC→Opus is
    available, since browsers do not take AAC). ``track`` supplies the profile to match (H.264
    profile-level-id, Opus channels). ``stream_id``/``track_id`` go into ``a=msid``.
    """

    kind: str
    codecs: tuple[str, ...]
    ssrc: int
    track: Track
    stream_id: str = "streamhive"
    track_id: str = ""
    #: Rooms: the client named the section (its transceiver) that receives this track.
    mid: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError(f"SSRC {self.ssrc} out of range")
        for name in (self.stream_id, self.track_id or "x"):
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"msid part {name!r} must be 1-64 token characters")

    @property
    def msid(self) -> str:
        return f"{self.stream_id} {self.track_id or f'{self.kind}{self.ssrc}'}"


@dataclass(slots=True)
class NegotiatedMedia:
    """One section we answered with media flowing.

    ``fmt`` is the format as agreed (the offered rtpmap/fmtp of ``payload_type``) and ``codec``
    the hub codec name it maps to; ``ssrcs`` are the publisher's (WHIP, possibly empty: then the
    mid or rid header extension or the first packet tells) or ours (WHEP); ``extmap`` maps the
    accepted extension URIs to the client's ids; ``direction`` is ours.
    """

    mid: str
    kind: str
    index: int
    payload_type: int
    fmt: SdpFormat
    codec: str
    ssrcs: list[int]
    rids: list[str]
    extmap: dict[str, int]
    feedback: set[str]
    direction: str
    source: int | None = None  # WHEP: index of the SendTrack sent here
    #: WHIP video: the client's RTX payload type for ``payload_type``, when it offered one. With
    #: RTX, browsers send retransmissions and bandwidth probes on a repair stream; without it
    #: probes are padding-only packets in the media sequence, and a lost probe (never resent)
    #: looks like lost media.
    rtx_payload_type: int | None = None


@dataclass(slots=True, frozen=True)
class Rejection:
    """An offered section we did not use (``index`` = m-line), or a send track no section took
    (``index`` = position in the send list, ``mid`` None), and why."""

    index: int
    kind: str
    reason: str
    mid: str | None = None


@dataclass(slots=True)
class Answer:
    sdp: str
    media: list[NegotiatedMedia]
    rejected: list[Rejection]  # offered sections answered inactive or with port 0
    unsent: list[Rejection]  # WHEP: send tracks no offered section can carry
    dtls_role: str  # "server" (we said setup:passive) or "client" (setup:active)
    #: The client's SCTP parameters when we accepted its data channel section (rooms), else None.
    datachannel: SctpParameters | None = None


# ---------------------------------------------------------------------------------------------
# offers


def parse_offer(text: str | bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_media: int = MAX_MEDIA) -> Offer:
    """Parse a WHIP/WHEP offer; raise SdpNegotiationError when no answer is possible.

    Raised for: malformed or oversized SDP, no media, missing or malformed ICE credentials or
    DTLS fingerprint, a setup role we cannot pair with, an ICE-lite client, or several usable
    sections without a BUNDLE group (we have one transport).
    """
    try:
        session = parse_sdp(text, max_bytes=max_bytes, max_media=max_media)
    except SdpError as exc:
        raise SdpNegotiationError(f"malformed SDP offer: {exc}") from exc
    if not session.media:
        raise SdpNegotiationError("the offer has no media sections")
    bundle = _bundle_group(session)
    seen: set[str] = set()
    media = [_offered(session, m, index, bundle, seen) for index, m in enumerate(session.media)]
    usable = [m for m in media if m.problem is None]
    if not usable:
        reasons = "; ".join(f"{m.kind} #{m.index}: {m.problem}" for m in media)
        raise SdpNegotiationError(f"no offered section can use a BUNDLEd DTLS-SRTP transport ({reasons})")
    if not bundle and len(usable) > 1:
        raise SdpNegotiationError(
            f"the offer has {len(usable)} media sections but no a=group:BUNDLE; the server has one transport"
        )
    if session.attribute("ice-lite") is not None:
        raise SdpNegotiationError("the offer is ICE-lite too; one side must be a full ICE agent")
    return Offer(session, _remote_ice(session, usable, bundle), media, bundle)


def _bundle_group(session: SessionDescription) -> list[str]:
    for name, value in session.attributes:
        if name == "group" and value:
            parts = value.split()
            if parts and parts[0] == "BUNDLE":
                return parts[1:]
    return []


def _offered(
    session: SessionDescription, m: MediaDescription, index: int, bundle: list[str], seen: set[str]
) -> OfferedMedia:
    mid = m.attribute("mid")
    formats = _formats(m)
    sctp = _sctp(m) if m.kind == "application" else None
    problem = sctp if isinstance(sctp, str) else _problem(m, mid, formats, bundle, seen)
    if mid is not None and problem is None:
        seen.add(mid)
    rids, simulcast = _rids(m)
    return OfferedMedia(
        index=index,
        kind=m.kind,
        mid=mid if mid is not None and _TOKEN.fullmatch(mid) else None,
        direction=_direction(m.attributes) or _direction(session.attributes) or "sendrecv",
        proto=m.proto,
        formats=formats,
        feedback=_feedback(m, formats),
        extmap=_extmap(m),
        ssrcs=_ssrcs(m),
        rids=rids,
        simulcast=simulcast,
        rtcp_rsize=m.attribute("rtcp-rsize") is not None,
        problem=problem,
        description=m,
        sctp=sctp if isinstance(sctp, SctpParameters) else None,
    )


def _problem(
    m: MediaDescription, mid: str | None, formats: dict[int, SdpFormat], bundle: list[str], seen: set[str]
) -> str | None:
    """Why this section cannot ride our single transport, or None.

    Application sections reach here only as well-formed data channels (see _sctp); they must be
    in a BUNDLE group even when alone with one media section, so WHIP offers without one keep
    answering as they did before data channels existed."""
    rtp = m.kind != "application"
    if rtp and m.kind not in ("audio", "video"):
        return f"{m.kind[:20]!r} sections are not supported"
    if rtp and "RTP/SAVP" not in m.proto.upper():
        return f"transport {m.proto[:40]!r} is not DTLS-SRTP"
    if m.port == 0 and m.attribute("bundle-only") is None:
        return "disabled by the offerer (port 0)"
    if mid is None or not _TOKEN.fullmatch(mid):
        return "no valid a=mid"
    if mid in seen:
        return f"duplicate mid {mid!r}"
    if (bundle or not rtp) and mid not in bundle:
        return "not in the BUNDLE group"
    if rtp and m.attribute("rtcp-mux") is None:
        return "no a=rtcp-mux"
    if rtp and not formats:
        return "no payload format with an rtpmap"
    return None


def _sctp(m: MediaDescription) -> SctpParameters | str:
    """A data channel section's SCTP parameters, or why the application section is not one."""
    proto = m.proto.upper()
    if proto in _SCTP_PROTOS and m.formats == ["webrtc-datachannel"]:
        value = m.attribute("sctp-port")
        port = SCTP_PORT if value is None else _uint(value, 65535)
        legacy = False
    elif proto == _LEGACY_SCTP_PROTO and len(m.formats) == 1:
        port = _uint(m.formats[0], 65535)
        if (m.attribute("sctpmap") or "").split()[:2] != [m.formats[0], "webrtc-datachannel"]:
            return f"no a=sctpmap:{m.formats[0][:10]} webrtc-datachannel in a legacy data channel section"
        legacy = True
    else:
        return f"'application' sections other than WebRTC data channels are not supported ({m.proto[:40]!r})"
    if not port:
        return "malformed SCTP port"
    value = m.attribute("max-message-size")
    size = DEFAULT_MAX_MESSAGE_SIZE if value is None else _uint(value, 0xFFFFFFFF)
    if size is None:
        return "malformed a=max-message-size"
    return SctpParameters(port, size, legacy)


def _direction(attributes: list[Attribute]) -> str | None:
    for name, value in attributes:
        if name in _DIRECTIONS and value is None:
            return name
    return None


def _uint(text: str, limit: int) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= limit:
        return int(text)
    return None


def _formats(m: MediaDescription) -> dict[int, SdpFormat]:
    rtpmap, fmtp = m.rtpmap(), m.fmtp()
    out: dict[int, SdpFormat] = {}
    for text in m.formats:
        pt = _uint(text, 127)
        if pt is not None and pt in rtpmap and pt not in out:
            encoding, clock, channels = rtpmap[pt]
            if _TOKEN.fullmatch(encoding):
                params = {k: v for k, v in fmtp.get(pt, {}).items() if _printable(k) and _printable(v)}
                out[pt] = SdpFormat(encoding, clock, channels, params)
    return out


def _printable(text: str) -> bool:
    return text.isprintable() and len(text) <= 1024


def _feedback(m: MediaDescription, formats: dict[int, SdpFormat]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {pt: set() for pt in formats}
    for value in m.attribute_values("rtcp-fb"):
        target, _, kind = value.partition(" ")
        kind = " ".join(kind.split()).lower()
        if not kind:
            continue
        if target == "*":
            for items in out.values():
                items.add(kind)
        else:
            pt = _uint(target, 127)
            if pt in out:
                out[pt].add(kind)
    return out


def _extmap(m: MediaDescription) -> dict[str, int]:
    """URI -> id; ``a=extmap:<id>[/<direction>] <uri> [<attributes>]`` (RFC 8285)."""
    out: dict[str, int] = {}
    for value in m.attribute_values("extmap"):
        parts = value.split()
        if len(parts) >= 2:
            number = _uint(parts[0].partition("/")[0], 255)
            if number and parts[1] not in out:
                out[parts[1]] = number
    return out


def _ssrcs(m: MediaDescription) -> list[int]:
    """Media SSRCs in order: repair streams (the second of FID / FEC-FR pairs) left out, and of
    SDP-munged simulcast (``ssrc-group:SIM``) only the first layer, as with rids."""
    repair: set[int] = set()
    extra_layers: set[int] = set()
    for value in m.attribute_values("ssrc-group"):
        semantics, *members = value.split() or [""]
        numbers = [n for n in (_uint(x, 0xFFFFFFFF) for x in members) if n is not None]
        if semantics in ("FID", "FEC-FR"):
            repair.update(numbers[1:])
        elif semantics == "SIM":
            extra_layers.update(numbers[1:])
    out: list[int] = []
    for value in m.attribute_values("ssrc"):
        ssrc = _uint(value.partition(" ")[0], 0xFFFFFFFF)
        if ssrc is not None and ssrc not in repair and ssrc not in extra_layers and ssrc not in out:
            out.append(ssrc)
    return out


def _rids(m: MediaDescription) -> tuple[list[str], bool]:
    """The rids the client sends, preferred first, and whether it offered ``a=simulcast``.

    RFC 8853 orders ``a=simulcast:send`` by the sender's preference; within one stream,
    comma-separated alternatives, and ``~`` marks a paused stream (skipped). Firefox before 71
    wrote ``send rid=a;b``. Without a simulcast line, the ``a=rid`` send lines in order.
    """
    declared: list[str] = []
    for value in m.attribute_values("rid"):
        parts = value.split()
        if len(parts) >= 2 and parts[1] == "send" and _RID.fullmatch(parts[0]) and parts[0] not in declared:
            declared.append(parts[0])
    line = m.attribute("simulcast")
    if line is None:
        return declared, False
    tokens = line.split()
    ordered: list[str] = []
    for direction, streams in zip(tokens[::2], tokens[1::2], strict=False):
        if direction != "send":
            continue
        streams = streams.removeprefix("rid=")
        for stream in streams.split(";"):
            for alternative in stream.split(","):
                if alternative in declared and alternative not in ordered:
                    ordered.append(alternative)
    return ordered, True


def _remote_ice(session: SessionDescription, usable: list[OfferedMedia], bundle: list[str]) -> RemoteIce:
    """Transport attributes from the BUNDLE-tagged section first (RFC 8843), then the others,
    then the session level: clients differ in where they put them (OBS: session level)."""
    order = sorted(usable, key=lambda m: bundle.index(m.mid) if m.mid in bundle else len(bundle))
    scopes = [m.description.attributes for m in order] + [session.attributes]

    def first(name: str) -> str | None:
        for attributes in scopes:
            for key, value in attributes:
                if key == name and value:
                    return value
        return None

    ufrag, pwd, setup = first("ice-ufrag"), first("ice-pwd"), (first("setup") or "actpass")
    if ufrag is None or pwd is None:
        raise SdpNegotiationError("the offer has no a=ice-ufrag/a=ice-pwd")
    if not _ICE_CREDENTIAL.fullmatch(ufrag) or not _ICE_CREDENTIAL.fullmatch(pwd):
        raise SdpNegotiationError("malformed a=ice-ufrag or a=ice-pwd in the offer")
    fingerprints: list[str] = []
    for attributes in scopes:
        fingerprints += [
            fp for fp in (_fingerprint(v or "") for k, v in attributes if k == "fingerprint") if fp
        ]
        if fingerprints:
            break
    if not fingerprints:
        raise SdpNegotiationError("the offer has no valid a=fingerprint (DTLS certificate hash)")
    setup = setup.strip().lower()
    if setup not in ("actpass", "active", "passive"):
        raise SdpNegotiationError(f"unusable DTLS role a=setup:{setup[:20]} in the offer")
    preferred = next((fp for fp in fingerprints if fp.startswith("sha-256 ")), fingerprints[0])
    candidates = [v for m in order for v in m.description.attribute_values("candidate")]
    candidates += [v or "" for k, v in session.attributes if k == "candidate"]
    return RemoteIce(ufrag, pwd, preferred, setup, candidates[:MAX_CANDIDATES])


def _fingerprint(value: str) -> str | None:
    """``sha-256 ab:cd:...`` normalized to a lower-case algorithm and upper-case hex, or None."""
    parts = value.split()
    if (
        len(parts) != 2
        or parts[0].lower() not in _FINGERPRINT_ALGORITHMS
        or not _FINGERPRINT.fullmatch(parts[1])
    ):
        return None
    return f"{parts[0].lower()} {parts[1].upper()}"


# ---------------------------------------------------------------------------------------------
# codec choice


def _h264_profile(fmt: SdpFormat) -> str:
    """The H.264 profile a profile-level-id names, classed as libwebrtc matches codecs:
    constrained baseline is 42 with constraint_set1, 4d with constraint_set0, or 58 with both."""
    plid = fmt.fmtp.get("profile-level-id", "42000a")  # RFC 6184 default: Baseline
    if not _HEX6.fullmatch(plid):
        return "?"
    idc, iop = int(plid[:2], 16), int(plid[2:4], 16)
    if (
        (idc, iop & 0x40) == (0x42, 0x40)
        or (idc, iop & 0x80) == (0x4D, 0x80)
        or (idc, iop & 0xC0) == (0x58, 0xC0)
    ):
        return "constrained-baseline"
    if idc == 0x64 and iop & 0x0C == 0x0C:
        return "constrained-high"
    return f"{idc:02x}"


def _h264_distance(ours: str, offered: str) -> int:
    """0 for the track's own profile, then the least capable profile that contains it (a decoder
    set up for High decodes Main), then lesser profiles: Chromium offers no High, only 4:4:4."""
    if ours == offered:
        return 0
    if ours not in _H264_PROFILE_ORDER or offered not in _H264_PROFILE_ORDER:
        return 200
    step = _H264_PROFILE_ORDER.index(offered) - _H264_PROFILE_ORDER.index(ours)
    return step if step > 0 else 100 - step


def _our_format(codec: str, track: Track) -> SdpFormat | None:
    """How we would describe ``track`` sent as ``codec``; a transcoded codec keeps only the
    channel count and rate (its profile is the transcoder's), None when nothing is known."""
    if codec != track.codec:
        track = Track(track.kind, codec, sample_rate=track.sample_rate, channels=track.channels)
    rtp = codec_for_track(track)
    if rtp is None:
        return None
    try:
        return rtp.sdp_format(track)
    except ValueError:  # a config the payload format cannot describe: no profile to match
        return None


def _rank_play(codec: str, fmt: SdpFormat, ours: SdpFormat | None) -> int | None:
    """How well an offered format suits sending ``codec`` (0 best), None when it cannot carry it."""
    if codec == "h264":
        if fmt.fmtp.get("packetization-mode", "0") != "1":  # we send FU-A/STAP-A: mode 1 only
            return None
        return _h264_distance(_h264_profile(ours), _h264_profile(fmt)) if ours is not None else 0
    if codec == "opus":
        return 0 if fmt.clock_rate == 48000 else None
    if codec in ("pcma", "pcmu"):
        return 0 if fmt.clock_rate == 8000 and (fmt.channels or 1) == 1 else None
    if codec in _PROFILE_KEYS:
        key, default = _PROFILE_KEYS[codec]
        wanted = ours.fmtp.get(key, default) if ours is not None else default
        return 0 if fmt.fmtp.get(key, default) == wanted else 1
    return 0


def _rank_publish(codec: str, fmt: SdpFormat) -> int | None:
    rtp = codec_for_encoding(fmt.encoding)
    if rtp is None:
        return None
    try:
        rtp.track_from_sdp(fmt)
    except ValueError:  # the payload format refuses these parameters (RtpError is a ValueError)
        return None
    if codec == "h264":  # mode 0 forbids aggregation and fragmentation: prefer 1
        return 0 if fmt.fmtp.get("packetization-mode", "0") == "1" else 1
    return 0


Rank = Callable[[str, SdpFormat], int | None]


def _pick(media: OfferedMedia, codecs: Sequence[str], rank: Rank) -> tuple[str, int] | None:
    """The first codec in ``codecs`` the section offers, and its best payload type (offer order
    breaks ties); ``rank(codec, fmt)`` returns None for formats that cannot carry it."""
    for codec in codecs:
        best: tuple[int, int] | None = None
        for pt, fmt in media.formats.items():
            rtp = codec_for_encoding(fmt.encoding)
            if rtp is None or rtp.name != codec or rtp.kind != media.kind:
                continue
            score = rank(codec, fmt)
            if score is not None and (best is None or score < best[0]):
                best = (score, pt)
        if best is not None:
            return codec, best[1]
    return None


# ---------------------------------------------------------------------------------------------
# answers


def _fmtp_value(fmt: SdpFormat, key: str) -> str | None:
    """An fmtp parameter, its name compared case-insensitively (``apt``, ``APT``)."""
    return next((v.strip() for k, v in fmt.fmtp.items() if k.strip().lower() == key), None)


def answer_publish(
    offer: Offer,
    accept: Mapping[str, Sequence[str]],
    local: LocalIce,
    simulcast: bool = False,
    datachannel: bool = False,
    allow_empty: bool = False,
) -> Answer:
    """Answer a WHIP offer: receive each sending section with one codec from ``accept``.

    ``accept`` maps a kind to the hub codec names we take, preferred first. Of a simulcast
    offer WHIP takes only the first stream of the client's ``a=simulcast`` line (its preferred,
    normally its highest layer) and answers ``a=simulcast:recv`` with just that rid, so the
    client stops sending the others; rooms (``simulcast=True``) take every layer.
    ``datachannel=True`` (rooms) accepts a data channel section; an offer with nothing else is
    then answerable. ``allow_empty`` (rooms) answers an offer with nothing to receive, every
    section inactive: a participant that unpublished its last track keeps its connection.
    """
    channel, rejected = _datachannel(offer, datachannel)
    negotiated: list[NegotiatedMedia] = []
    for media in offer.media:
        if _bundled_datachannel(media):
            continue
        reason = media.problem
        if reason is None and media.direction not in ("sendonly", "sendrecv"):
            reason = f"the client does not send here (a={media.direction})"
        pick = None
        if reason is None:
            wanted = accept.get(media.kind, ())
            pick = _pick(media, wanted, _rank_publish)
            if pick is None:
                reason = f"no common codec: offered {_names(media)}, we take {'/'.join(wanted) or 'none'}"
        if pick is None:
            rejected.append(Rejection(media.index, media.kind, reason or "", media.mid))
            continue
        codec, pt = pick
        rtx = next(
            (
                number
                for number, fmt in media.formats.items()
                if fmt.encoding.upper() == "RTX" and _fmtp_value(fmt, "apt") == str(pt)
            ),
            None,
        )
        negotiated.append(
            NegotiatedMedia(
                mid=media.mid or "",
                kind=media.kind,
                index=media.index,
                payload_type=pt,
                fmt=media.formats[pt],
                codec=codec,
                ssrcs=list(media.ssrcs),
                rids=list(media.rids) if simulcast else media.rids[:1],
                extmap=_accepted_extensions(media),
                feedback=media.feedback[pt] & set(FEEDBACK),
                direction="recvonly",
                rtx_payload_type=rtx if media.kind == "video" else None,
            )
        )
    if not negotiated and channel is None and not allow_empty:
        taken = "; ".join(f"{kind} {'/'.join(names)}" for kind, names in accept.items() if names) or "nothing"
        raise SdpNegotiationError(f"nothing to publish: {_summary(offer, rejected)}; we take {taken}")
    return _answer(offer, local, negotiated, rejected, [], {}, "", channel)


def answer_play(
    offer: Offer,
    send: Sequence[SendTrack],
    local: LocalIce,
    cname: str = "streamhive",
    extensions: bool = True,
    allow_empty: bool = False,
    datachannel: bool = False,
) -> Answer:
    """Answer a WHEP offer: send each track on a receiving section of its kind, in m-line order.

    A track takes the first free section offering one of its ``codecs`` (tried in that order)
    and, for that codec, the client's payload type closest to the track: for H.264 one with
    packetization-mode=1 and the track's profile when offered, else the least capable profile
    containing it (some hardware decoders are set up for the profile the SDP names), else the
    closest lesser one (software decoders take any). Tracks no section can carry are in ``unsent``
    (an AAC track to a browser: offer ``"opus"`` in its codecs when a transcoder can make it).
    A track with a ``mid`` goes only to that section (rooms: the client chose the transceiver).
    ``extensions=False`` answers no RTP header extensions: a room forwards packets with theirs
    stripped, so the client demultiplexes by the SSRCs we announce. ``allow_empty`` answers an
    offer with nothing to send (every section inactive) instead of raising: a room subscriber
    whose last track went away keeps its connection. ``datachannel=True`` (rooms) accepts a
    data channel section, as for answer_publish.
    """
    if not _TOKEN.fullmatch(cname):
        raise ValueError(f"CNAME {cname!r} must be 1-64 token characters")
    negotiated: list[NegotiatedMedia] = []
    unsent: list[Rejection] = []
    senders: dict[int, SendTrack] = {}  # m-line index -> what we send there
    for source, item in enumerate(send):
        ours = {codec: _our_format(codec, item.track) for codec in item.codecs}

        def rank(codec: str, fmt: SdpFormat, ours: dict[str, SdpFormat | None] = ours) -> int | None:
            return _rank_play(codec, fmt, ours[codec])

        for media in offer.media:
            if media.index in senders or media.problem or media.kind != item.kind:
                continue
            if item.mid is not None and media.mid != item.mid:
                continue
            if media.direction not in ("recvonly", "sendrecv"):
                continue
            pick = _pick(media, item.codecs, rank)
            if pick is None:
                continue
            codec, pt = pick
            fmt = media.formats[pt]
            if codec == "opus" and ours["opus"] is not None:  # say whether we send stereo
                stereo = {k: v for k, v in ours["opus"].fmtp.items() if k in ("stereo", "sprop-stereo")}
                fmt = SdpFormat(fmt.encoding, fmt.clock_rate, fmt.channels, {**fmt.fmtp, **stereo})
            senders[media.index] = item
            negotiated.append(
                NegotiatedMedia(
                    mid=media.mid or "",
                    kind=media.kind,
                    index=media.index,
                    payload_type=pt,
                    fmt=fmt,
                    codec=codec,
                    ssrcs=[item.ssrc],
                    rids=[],
                    extmap=_accepted_extensions(media) if extensions else {},
                    feedback=media.feedback[pt] & set(FEEDBACK),
                    direction="sendonly",
                    source=source,
                )
            )
            break
        else:
            offered = ", ".join(_names(m) for m in offer.media if m.kind == item.kind) or "none"
            reason = f"no offered {item.kind} section takes {'/'.join(item.codecs) or 'nothing'} (offered: {offered})"
            unsent.append(Rejection(source, item.kind, reason))
    channel, rejected = _datachannel(offer, datachannel)
    for media in offer.media:
        if media.index in senders or _bundled_datachannel(media):
            continue
        reason = media.problem
        if reason is None and media.direction not in ("recvonly", "sendrecv"):
            reason = f"the client does not receive here (a={media.direction})"
        elif reason is None:
            kinds = [s for s in send if s.kind == media.kind]
            reason = (
                f"no common {media.kind} codec" if kinds else f"the stream has no {media.kind} track for it"
            )
        rejected.append(Rejection(media.index, media.kind, reason, media.mid))
    if not negotiated and not allow_empty and channel is None:
        have = ", ".join(f"{s.kind} {s.track.codec} (as {'/'.join(s.codecs) or 'nothing'})" for s in send)
        raise SdpNegotiationError(
            f"nothing to play: {_summary(offer, rejected)}; the stream has {have or 'no tracks'}"
        )
    return _answer(offer, local, negotiated, rejected, unsent, senders, cname, channel)


def _bundled_datachannel(media: OfferedMedia) -> bool:
    """A data channel section that could share our transport: _datachannel decides it."""
    return media.sctp is not None and media.problem is None


def _datachannel(offer: Offer, wanted: bool) -> tuple[OfferedMedia | None, list[Rejection]]:
    """The data channel section to accept (the first bundled one, when ``wanted``) and the
    rejections of the other bundled ones: a transport carries one SCTP association."""
    chosen: OfferedMedia | None = None
    rejected: list[Rejection] = []
    for media in offer.media:
        if not _bundled_datachannel(media):
            continue
        if wanted and chosen is None:
            chosen = media
            continue
        reason = (
            "a second data channel section" if wanted else "'application' sections are not supported here"
        )
        rejected.append(Rejection(media.index, media.kind, reason, media.mid))
    return chosen, rejected


def _accepted_extensions(media: OfferedMedia) -> dict[str, int]:
    return {uri: number for uri, number in media.extmap.items() if uri in EXTENSIONS}


def _names(media: OfferedMedia) -> str:
    names = list(dict.fromkeys(fmt.encoding for fmt in media.formats.values()))
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"{media.kind} (a={media.direction}) [{shown}]"


def _summary(offer: Offer, rejected: list[Rejection]) -> str:
    reasons = {r.index: r.reason for r in rejected}
    return "; ".join(f"{_names(m)} mid {m.mid or '?'}: {reasons.get(m.index, 'ok')}" for m in offer.media)


def _answer(
    offer: Offer,
    local: LocalIce,
    negotiated: list[NegotiatedMedia],
    rejected: list[Rejection],
    unsent: list[Rejection],
    senders: dict[int, SendTrack],
    cname: str,
    datachannel: OfferedMedia | None,
) -> Answer:
    setup = "active" if offer.ice.setup == "passive" else "passive"
    by_index = {n.index: n for n in negotiated}
    sections: list[MediaDescription] = []
    bundled: list[str] = []
    for media in offer.media:
        chosen = by_index.get(media.index)
        if media.problem is not None or (media.sctp is not None and media is not datachannel):
            sections.append(_rejected_section(media))
            continue
        assert media.mid is not None  # no problem implies a valid mid
        bundled.append(media.mid)
        if media is datachannel:
            sections.append(_datachannel_section(media, local, setup))
            continue
        if chosen is not None:
            pt, fmt, direction = chosen.payload_type, chosen.fmt, chosen.direction
        else:  # usable but unused: stays in the BUNDLE, inactive
            pt, fmt = _inactive_format(media)
            direction = "inactive"
        attributes: list[Attribute] = [("rtcp", "9 IN IP4 0.0.0.0"), *_transport(local, setup, media.mid)]
        if chosen is not None:
            attributes += [("extmap", f"{number} {uri}") for uri, number in chosen.extmap.items()]
        attributes.append((direction, None))
        sender = senders.get(media.index)
        if sender is not None:
            attributes.append(("msid", sender.msid))
        attributes.append(("rtcp-mux", None))
        if media.rtcp_rsize:
            attributes.append(("rtcp-rsize", None))
        attributes.append(("rtpmap", _rtpmap(pt, fmt)))
        if chosen is not None:
            attributes += [("rtcp-fb", f"{pt} {kind}") for kind in FEEDBACK if kind in chosen.feedback]
        if fmt.fmtp:
            attributes.append(
                ("fmtp", f"{pt} " + ";".join(f"{k}={v}" if v else k for k, v in fmt.fmtp.items()))
            )
        formats = [str(pt)]
        rtx = chosen.rtx_payload_type if chosen is not None else None
        if rtx is not None:
            formats.append(str(rtx))
            attributes += [("rtpmap", f"{rtx} rtx/{fmt.clock_rate}"), ("fmtp", f"{rtx} apt={pt}")]
        if chosen is not None and chosen.rids:
            attributes += [("rid", f"{rid} recv") for rid in chosen.rids]
            if media.simulcast:
                attributes.append(("simulcast", "recv " + ";".join(chosen.rids)))
        if sender is not None:  # lets the client demux by SSRC when packets carry no mid
            attributes += [
                ("ssrc", f"{sender.ssrc} cname:{cname}"),
                ("ssrc", f"{sender.ssrc} msid:{sender.msid}"),
            ]
        attributes += _candidates(local)
        sections.append(
            MediaDescription(media.kind, 9, media.proto, formats, None, None, Connection(), [], attributes)
        )
    session_attributes: list[Attribute] = []
    if offer.bundle:
        session_attributes.append(("group", " ".join(["BUNDLE", *bundled])))
    session_attributes += [("ice-lite", None), ("msid-semantic", " WMS *")]
    description = SessionDescription(attributes=session_attributes, media=sections)
    description.origin.session_id = str(random.getrandbits(62))
    description.origin.session_version = "2"
    try:
        text = description.encode()
    except SdpError as exc:  # an offered value we echo carries a control character
        raise SdpNegotiationError(f"cannot answer this offer: {exc}") from exc
    rejected.sort(key=lambda r: r.index)
    sctp = datachannel.sctp if datachannel is not None else None
    return Answer(text, negotiated, rejected, unsent, "client" if setup == "active" else "server", sctp)


def _transport(local: LocalIce, setup: str, mid: str) -> list[Attribute]:
    """The ICE and DTLS lines every bundled section repeats."""
    return [
        ("ice-ufrag", local.ufrag),
        ("ice-pwd", local.pwd),
        ("fingerprint", local.fingerprint),
        ("setup", setup),
        ("mid", mid),
    ]


def _datachannel_section(media: OfferedMedia, local: LocalIce, setup: str) -> MediaDescription:
    """Our SCTP port and message size limit, in the form the client offered (RFC 8841, or the
    legacy ``a=sctpmap`` with the stream count Chrome used to answer)."""
    assert media.sctp is not None and media.mid is not None
    attributes = _transport(local, setup, media.mid)
    if media.sctp.legacy:
        formats = [str(SCTP_PORT)]
        attributes.append(("sctpmap", f"{SCTP_PORT} webrtc-datachannel 1024"))
    else:
        formats = ["webrtc-datachannel"]
        attributes.append(("sctp-port", str(SCTP_PORT)))
    attributes.append(("max-message-size", str(MAX_MESSAGE_SIZE)))
    attributes += _candidates(local)
    return MediaDescription("application", 9, media.proto, formats, None, None, Connection(), [], attributes)


def _inactive_format(media: OfferedMedia) -> tuple[int, SdpFormat]:
    """A format to name in an inactive answer: a media codec, never a repair format alone
    (libwebrtc refuses an answer whose rtx ``apt`` points at a payload type it does not list)."""
    for pt, fmt in media.formats.items():
        if fmt.encoding.upper() not in _REPAIR_ENCODINGS:
            return pt, fmt
    return next(iter(media.formats.items()))


def _rejected_section(media: OfferedMedia) -> MediaDescription:
    """Port 0 with the offered formats (RFC 3264 6), the mid kept (RFC 8843 7.3.3)."""
    source = media.description
    attributes: list[Attribute] = [("mid", media.mid)] if media.mid is not None else []
    attributes.append(("inactive", None))
    formats = [f for f in source.formats if _TOKEN.fullmatch(f)] or ["0"]
    return MediaDescription(source.kind, 0, source.proto, formats, None, None, Connection(), [], attributes)


def _rtpmap(pt: int, fmt: SdpFormat) -> str:
    return f"{pt} {fmt.encoding}/{fmt.clock_rate}" + (f"/{fmt.channels}" if fmt.channels else "")


def _candidates(local: LocalIce) -> list[Attribute]:
    """Host candidates, UDP first (FFmpeg's WHIP muxer takes the first UDP host line), each with
    its own foundation and a priority from RFC 8445 5.1.2 (RFC 6544 4.2 for TCP passive).

    They go on every bundled section, not only the first: browsers read the BUNDLE-tagged one,
    which is the first section we accept, not necessarily the first offered."""
    out: list[Attribute] = []
    udp = [(host, port) for host, port, protocol in local.candidates if protocol == "udp"]
    tcp = [(host, port) for host, port, protocol in local.candidates if protocol == "tcp"]
    for index, (host, port) in enumerate(udp):
        priority = (126 << 24) | ((65535 - index) << 8) | 255
        out.append(("candidate", f"{index + 1} 1 udp {priority} {host} {port} typ host"))
    for index, (host, port) in enumerate(tcp):
        priority = (99 << 24) | ((40959 - index) << 8) | 255
        out.append(
            ("candidate", f"{len(udp) + index + 1} 1 tcp {priority} {host} {port} typ host tcptype passive")
        )
    out.append(("end-of-candidates", None))
    return out
