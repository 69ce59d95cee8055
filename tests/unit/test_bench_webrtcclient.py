"""bench/webrtcclient.py: its SDP reading and writing, loss counting, keyframe spotting, and one
viewer against an in-process ICE-lite + DTLS server built from streamhive's sans-IO cores."""

from __future__ import annotations

import asyncio
import time

import pytest
from bench.webrtcclient import (
    LocalIce,
    SeqCounter,
    Viewer,
    ViewerStats,
    WebRtcClientError,
    _h264_keyframe,
    answer_for,
    parse_remote_sdp,
    whep_offer,
)

from streamhive.protocols.webrtc.dtls import DtlsCertificate, DtlsEndpoint
from streamhive.protocols.webrtc.ice import IceLite
from streamhive.protocols.webrtc.srtp import SrtpContext

# What Janus 1.1.2's streaming plugin offers for an H.264 + Opus "rtp" mountpoint (trimmed).
JANUS_OFFER = """v=0
o=- 1796051232940737 1 IN IP4 192.0.2.2
s=Mountpoint 1
t=0 0
a=group:BUNDLE v a
a=fingerprint:sha-256 59:FF:D4:D0:F6:5B:59:27:60:53:B1:F7:D9:CE:7A:D2:1B:96:90:EC:97:5C:A2:09:4E:94:59:82:C0:A3:DE:DE
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 192.0.2.2
a=sendonly
a=mid:v
a=rtcp-mux
a=ice-ufrag:dkOZ
a=ice-pwd:EXgQJyYal7lq4ukpKmpBB4
a=setup:actpass
a=rtpmap:96 H264/90000
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 goog-remb
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=candidate:1 1 udp 2015363327 192.0.2.2 32230 typ host
a=candidate:2 1 udp 2015363583 fd00::2 31217 typ host
a=end-of-candidates
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 192.0.2.2
a=sendonly
a=mid:a
a=ice-ufrag:dkOZ
a=ice-pwd:EXgQJyYal7lq4ukpKmpBB4
a=setup:actpass
a=rtpmap:111 opus/48000/2
a=candidate:1 1 udp 2015363327 192.0.2.2 32230 typ host
a=candidate:2 1 udp 2015363583 fd00::2 31217 typ host
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
a=mid:d
"""

LOCAL = LocalIce("abcd1234", "0123456789abcdef01234567", "sha-256 AA:BB", "192.0.2.9", 40000)


def test_janus_offer_is_read() -> None:
    remote = parse_remote_sdp(JANUS_OFFER)
    assert (remote.ufrag, remote.pwd, remote.setup, remote.ice_lite) == (
        "dkOZ",
        "EXgQJyYal7lq4ukpKmpBB4",
        "actpass",
        False,
    )
    assert remote.fingerprint.startswith("sha-256 59:FF")
    assert remote.candidates == [("192.0.2.2", 32230)]  # IPv6 left out, repeats folded
    video, audio, data = remote.media
    assert (video.kind, video.mid, video.pts, video.pick("h264")) == ("video", "v", [96, 97], 96)
    assert video.fmtp[96] == "profile-level-id=42e01f;packetization-mode=1"
    assert (audio.mid, audio.pick("opus"), data.kind, data.pts) == ("a", 111, "application", [])


def test_answer_to_janus() -> None:
    answer = answer_for(parse_remote_sdp(JANUS_OFFER), LOCAL)
    lines = answer.split("\r\n")
    assert "a=group:BUNDLE v a" in lines
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96" in lines and "m=audio 9 UDP/TLS/RTP/SAVPF 111" in lines
    assert "m=application 0 UDP/TLS/RTP/SAVPF 0" in lines  # rejected
    assert lines.count("a=recvonly") == 2 and lines.count("a=setup:active") == 2
    assert "a=rtcp-fb:96 nack" in lines and "a=rtcp-fb:96 goog-remb" not in lines
    assert "a=candidate:1 1 udp 2130706431 192.0.2.9 40000 typ host" in lines
    assert not any("rtx" in line for line in lines)


def test_whep_offer_reads_back() -> None:
    offer = parse_remote_sdp(whep_offer(LOCAL))
    assert (offer.ufrag, offer.pwd, offer.fingerprint, offer.setup) == (
        LOCAL.ufrag,
        LOCAL.pwd,
        "sha-256 AA:BB",
        "active",
    )
    assert offer.candidates == [("192.0.2.9", 40000)]
    assert [(m.kind, m.pick("h264") or m.pick("opus")) for m in offer.media] == [
        ("video", 96),
        ("audio", 111),
    ]
    assert "packetization-mode=1" in offer.media[0].fmtp[96]


def test_ice_lite_and_connection_address_fallback() -> None:
    sdp = "v=0\na=ice-lite\nm=video 5000 UDP/TLS/RTP/SAVPF 96\nc=IN IP4 127.0.0.1\na=ice-ufrag:u\na=ice-pwd:p\na=fingerprint:sha-256 AA\n"
    remote = parse_remote_sdp(sdp)
    assert remote.ice_lite and remote.candidates == [("127.0.0.1", 5000)]


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        ("v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=ice-pwd:p\na=fingerprint:x\n", "ice-ufrag"),
        ("v=0\na=ice-ufrag:u\na=ice-pwd:p\na=fingerprint:f\n", "no m-line"),
        ("v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=ice-ufrag:u\na=ice-pwd:p\na=fingerprint:f\n", "candidate"),
        ("v=0\nm=video\n", "malformed m-line"),
    ],
)
def test_unusable_sdp(sdp: str, message: str) -> None:
    with pytest.raises(WebRtcClientError, match=message):
        parse_remote_sdp(sdp)


def test_seq_counter_loss_wrap_reorder_restart() -> None:
    c = SeqCounter()
    for seq in (65533, 65534, 65535, 0, 2, 1, 1, 5):  # wraps, 3 and 4 lost, 1 late and duplicated
        c.add(seq, 100)
    assert (c.received, c.expected, c.lost, c.bytes) == (8, 9, 1, 800)  # a duplicate hides a loss, as in RTCP
    c.add(40000, 100)  # a new sequence (a restarted source), not 35000 lost
    c.add(40002, 100)
    assert (c.restarts, c.expected, c.received, c.lost) == (1, 12, 10, 2)


def rtp(
    payload: bytes,
    seq: int = 1,
    ts: int = 0,
    marker: bool = True,
    pt: int = 96,
    csrc: int = 0,
    ext: bytes = b"",
) -> bytes:
    first = 0x80 | csrc | (0x10 if ext else 0)
    header = bytes([first, (0x80 if marker else 0) | pt]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big")
    header += (0x1234).to_bytes(4, "big") + bytes(4 * csrc)
    if ext:
        header += b"\xbe\xde" + (len(ext) // 4).to_bytes(2, "big") + ext
    return header + payload


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"\x65\x88", True),  # IDR slice
        (b"\x67\x42", True),  # SPS
        (b"\x41\x9a", False),  # P slice
        (b"\x78\x00\x02\x09\x10\x00\x03\x67\x42\x00", True),  # STAP-A: AUD, SPS
        (b"\x78\x00\x02\x09\x10\x00\x02\x41\x9a", False),  # STAP-A: AUD, P slice
        (b"\x7c\x85\x00", True),  # FU-A start of an IDR
        (b"\x7c\x05\x00", False),  # FU-A middle of an IDR
        (b"\x7c\x81\x00", False),  # FU-A start of a P slice
        (b"", False),
    ],
)
def test_keyframe_spotting(payload: bytes, key: bool) -> None:
    assert _h264_keyframe(rtp(payload)) is key
    assert _h264_keyframe(rtp(payload, csrc=2, ext=b"\x10\xff\x00\x00")) is key


class FakeServer(asyncio.DatagramProtocol):
    """ICE-lite, DTLS server, then SRTP media: a keyframe, frames with one packet missing, Opus."""

    def __init__(self, cert: DtlsCertificate, ufrag: str, pwd: str) -> None:
        self.ice = IceLite(ufrag, pwd)
        self.cert = cert
        self.dtls: DtlsEndpoint | None = None
        self.client_fingerprint = ""
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        assert self.transport is not None
        now = time.monotonic()
        if data[0] < 4:
            result = self.ice.handle(data, addr, now)
            if result.response:
                self.transport.sendto(result.response, addr)
            return
        if self.dtls is None:
            self.dtls = DtlsEndpoint(self.cert, "server", self.client_fingerprint)
        for d in self.dtls.receive(data, now):
            self.transport.sendto(d, addr)
        if self.dtls.connected and not self.sent.done():
            self.send_media(SrtpContext(self.dtls.srtp_keys), addr)

    def send_media(self, srtp: SrtpContext, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        packets = [rtp(b"\x65\x88\x84", seq=10, ts=0)]
        packets += [
            rtp(b"\x41\x9a", seq=11 + i, ts=3000 * (i + 1)) for i in range(8) if i != 3
        ]  # seq 14 lost
        packets += [rtp(b"\xfc\xff", seq=500 + i, ts=960 * i, marker=False, pt=111) for i in range(5)]
        for p in packets:
            self.transport.sendto(srtp.protect(p), addr)
        self.sent.set_result(len(packets))


async def one_viewer() -> ViewerStats:
    loop = asyncio.get_running_loop()
    cert = DtlsCertificate.generate()
    server_transport, server = await loop.create_datagram_endpoint(
        lambda: FakeServer(cert, "srvufrag", "srvpasswordsrvpassword12"), local_addr=("127.0.0.1", 0)
    )
    port = server_transport.get_extra_info("sockname")[1]
    stats = ViewerStats(0, started_at=time.monotonic())
    _, viewer = await loop.create_datagram_endpoint(
        lambda: Viewer(stats, cert, 2, 5.0), local_addr=("127.0.0.1", 0)
    )
    server.client_fingerprint = viewer.local("127.0.0.1").fingerprint
    answer = (
        "v=0\na=ice-lite\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 H264/90000\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\n"
        f"a=ice-ufrag:srvufrag\na=ice-pwd:srvpasswordsrvpassword12\na=fingerprint:{cert.fingerprint}\n"
        f"a=setup:passive\na=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host\n"
    )
    viewer.begin(parse_remote_sdp(answer), we_offered=True)
    await asyncio.wait_for(server.sent, 5)
    await asyncio.sleep(0.2)
    viewer.stop(time.monotonic())
    server_transport.close()
    assert server.ice.nominated
    return stats


def test_viewer_against_ice_lite_dtls_server() -> None:
    stats = asyncio.run(one_viewer())
    assert stats.error is None, stats.error
    assert stats.signal_s is not None and stats.ice_s is not None and stats.dtls_s is not None
    assert stats.first_packet_s is not None and stats.first_keyframe_s is not None
    assert (stats.video.received, stats.video.lost, stats.audio.received, stats.audio.lost) == (8, 1, 5, 0)
    assert stats.frames == 8 and stats.srtp_errors == 0
    assert stats.verified >= 4  # the first video packets until the keyframe and 2 more, 2 of audio
    assert stats.media_s == pytest.approx(9 * 3000 / 90000)  # 0..24000 spanned, plus one frame
