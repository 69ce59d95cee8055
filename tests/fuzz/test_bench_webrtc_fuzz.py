"""bench/webrtcclient.py reads whatever a server sends: remote SDP (only WebRtcClientError may
escape), decrypted RTP for keyframes and sequence numbers (nothing may escape)."""

from __future__ import annotations

from bench.webrtcclient import SeqCounter, WebRtcClientError, _h264_keyframe, parse_remote_sdp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.test_codecs_fuzz import mutated
from tests.unit.test_bench_webrtcclient import JANUS_OFFER

FUZZ = settings(max_examples=300, deadline=None)


def read(text: str) -> None:
    try:
        remote = parse_remote_sdp(text)
    except WebRtcClientError:
        return
    assert remote.candidates and remote.ufrag and remote.pwd and remote.fingerprint and remote.media


@FUZZ
@given(st.text(max_size=400))
def test_random_sdp(text: str) -> None:
    read(text)


@FUZZ
@given(mutated(JANUS_OFFER.encode()).map(lambda b: b.decode("latin-1")))
def test_mutated_sdp(text: str) -> None:
    read(text)


@FUZZ
@given(st.binary(max_size=64))
def test_keyframe_spotting_never_raises(packet: bytes) -> None:
    assert _h264_keyframe(packet) in (True, False)


@FUZZ
@given(st.lists(st.integers(0, 0xFFFF), max_size=200))
def test_seq_counter_counts(seqs: list[int]) -> None:
    c = SeqCounter()
    for seq in seqs:
        c.add(seq, 1)
    assert c.received == len(seqs) == c.bytes
    assert c.lost >= 0 and c.expected >= (1 if seqs else 0)
