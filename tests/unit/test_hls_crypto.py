"""HLS AES-128: segment encryption, IVs, key periods in the playlist, credentials carried into URIs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import yarl
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from streamhive.delivery import playlists
from streamhive.delivery.crypto import SegmentKeys, encrypt_segment, segment_iv
from streamhive.delivery.segmenter import Segmenter
from streamhive.hub.frame import Track
from tests.media import encode_video
from tests.unit.test_segmenter import feed, tracks

KEY_LINE = re.compile(r'#EXT-X-KEY:METHOD=AES-128,URI="key(\d+)\.key([^"]*)",IV=0x([0-9A-F]{32})')


def decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    """What a player does with a METHOD=AES-128 segment (written independently of crypto.py)."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def playlist_keys(text: str) -> list[tuple[int, int]]:
    """(key id, IV) of every EXT-X-KEY line, in order; the IV as an integer."""
    return [(int(k), int(iv, 16)) for k, _, iv in KEY_LINE.findall(text)]


def make(rotation: int = 2, **kw: object) -> Segmenter:
    options = dict(segment_duration=1.0, part_duration=0.2, window=4, with_ts=True, clock=lambda: 1e9)
    options.update(kw)
    return Segmenter(tracks(), keys=SegmentKeys(rotation), **options)  # type: ignore[arg-type]


@given(st.binary(max_size=3000), st.integers(0, 2**64), st.binary(min_size=16, max_size=16))
def test_encryption_round_trip_with_the_sequence_number_as_iv(data: bytes, msn: int, key: bytes) -> None:
    encrypted = encrypt_segment(data, key, msn)
    assert len(encrypted) % 16 == 0 and len(data) < len(encrypted) <= len(data) + 16  # PKCS#7
    assert decrypt(encrypted, key, msn.to_bytes(16, "big")) == data


def test_iv_is_the_msn_as_128_bit_big_endian() -> None:
    assert segment_iv(0) == bytes(16)
    assert segment_iv(0x0102) == bytes(14) + b"\x01\x02"
    assert segment_iv(2**64 + 5) == bytes(7) + b"\x01" + bytes(7) + b"\x05"
    key = bytes(range(16))
    assert encrypt_segment(b"x" * 32, key, 1) != encrypt_segment(b"x" * 32, key, 2)


def test_key_periods_rotate_every_n_segments_and_are_forgotten_out_of_the_window() -> None:
    seg = make(rotation=2, window=3)
    feed(seg, 7.1)  # segments 0..6 closed, 7 in progress
    assert [s.msn for s in seg.segments] == [4, 5, 6]
    assert [s.key_id for s in seg.segments] == [4, 4, 6]
    assert seg.current is not None and seg.current.key_id == 6
    assert seg.keys is not None and set(seg.keys.keys) == {4, 6}  # 0 and 2 left the window
    assert seg.keys.keys[4] != seg.keys.keys[6]


def test_one_key_while_published_when_rotation_is_zero() -> None:
    seg = make(rotation=0, window=3)
    feed(seg, 6.1)
    assert {s.key_id for s in seg.segments} == {0}
    assert seg.keys is not None and list(seg.keys.keys) == [0]


def test_ts_segments_are_encrypted_once_and_decrypt_to_transport_stream() -> None:
    seg = make()
    feed(seg, 3.1)
    assert seg.keys is not None
    for segment in seg.segments:
        assert segment.ts[0] != 0x47 or segment.ts[188] != 0x47  # not readable as TS
        clear = decrypt(segment.ts, seg.keys.keys[segment.key_id or 0], segment_iv(segment.msn))
        assert clear[0] == 0x47 and len(clear) % 188 == 0
        assert all(clear[i] == 0x47 for i in range(0, len(clear), 188))


def test_fmp4_segments_decrypt_to_their_parts_and_init_stays_clear() -> None:
    seg = make(with_ts=False)
    feed(seg, 3.1)
    assert seg.keys is not None
    assert seg.inits[0][4:8] == b"ftyp"
    for segment in seg.segments:
        joined = b"".join(part.data for part in segment.parts)  # parts stay clear (never served)
        assert segment.data != joined
        assert decrypt(segment.data, seg.keys.keys[segment.key_id or 0], segment_iv(segment.msn)) == joined
        assert joined[4:8] == b"moof"


def test_playlist_declares_each_segments_key_with_its_own_iv() -> None:
    seg = make(rotation=2, window=5)
    feed(seg, 6.1)  # segments 1..5 listed
    text = playlists.media_playlist(seg, low_latency=False, ts=True)
    assert playlist_keys(text) == [(0, 1), (2, 2), (2, 3), (4, 4), (4, 5)]
    lines = text.splitlines()
    for msn in range(1, 6):
        uri = lines.index(f"seg{msn}.ts")
        key_line = max(i for i in range(uri) if lines[i].startswith("#EXT-X-KEY"))
        assert f"IV=0x{msn:032X}" in lines[key_line]  # the key in force is this segment's own
    assert "METHOD=NONE" not in text and "#EXT-X-VERSION:3" in text


def test_fmp4_playlist_keeps_every_init_clear() -> None:
    """EXT-X-MAP comes while no key is in force: first, and after METHOD=NONE on a new init."""
    seg = make(with_ts=False, window=6)
    end = feed(seg, 2.1)
    seg.tracks[0] = Track("video", "h264", encode_video("libx264", 318, 238)[0], width=318, height=238)
    seg.tracks_changed()
    feed(seg, 2.1, start=end)
    lines = playlists.media_playlist(seg, low_latency=False, ts=False).splitlines()
    maps = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-MAP")]
    assert len(maps) == 2
    first_key = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-KEY"))
    assert maps[0] < first_key
    assert lines[maps[1] - 1] == "#EXT-X-KEY:METHOD=NONE"
    assert lines[maps[1] + 1].startswith("#EXT-X-KEY:METHOD=AES-128")


def test_ll_hls_refuses_encrypted_segments() -> None:
    seg = make()
    feed(seg, 2.1)
    with pytest.raises(ValueError, match="LL-HLS"):
        playlists.media_playlist(seg, low_latency=True, ts=False)


def test_new_publisher_gets_a_new_key_and_old_keys_stay_while_listed() -> None:
    old = make(rotation=0, with_ts=False)
    feed(old, 3.1)
    old.end()
    new = make(rotation=0, with_ts=False)
    new.continue_from(old)
    feed(new, 2.1)
    assert new.keys is not None and old.keys is not None
    ids = [s.key_id for s in new.segments]
    assert ids[0] == 0 and ids[-1] == 4 and set(ids) == {0, 4}  # key ids are first msns: no reuse
    assert new.keys.keys[0] == old.keys.keys[0] and new.keys.keys[4] != old.keys.keys[0]
    text = playlists.media_playlist(new, low_latency=False, ts=False)
    before, after = text.split("#EXT-X-DISCONTINUITY")
    assert "#EXT-X-KEY:METHOD=NONE" in after.split("#EXT-X-MAP")[0]  # init1 is clear too
    assert {k for k, _ in playlist_keys(before)} == {0} and {k for k, _ in playlist_keys(after)} == {4}


# -- credentials carried into URIs -------------------------------------------------------------
def carried(query_string: str) -> str:
    """What the HLS service appends, for a request with this raw query string."""
    return playlists.credentials_query(yarl.URL(f"http://h/x/index.m3u8?{query_string}").query.items())


def test_credentials_query_keeps_only_credentials_and_round_trips_tricky_values() -> None:
    assert carried("token=a+b/c%3D&_HLS_msn=3") == "?token=a%20b%2Fc%3D"
    assert carried("_HLS_msn=3&_HLS_part=1&_HLS_skip=YES&foo=1") == ""
    query = carried("key=k&expires=1700000000&sign=x%2By%26z%22%24&user=u&pass=p%20w&x=1")
    assert query == "?key=k&expires=1700000000&sign=x%2By%26z%22%24&user=u&pass=p%20w"
    # A player sends the URI back; the server must decode exactly the values it first got.
    original = yarl.URL('http://h/x/index.m3u8?token=a+b/c%3D&sign=x%2By%26z"$').query
    again = yarl.URL(f"http://h/x/seg1.ts{carried('token=a+b/c%3D&sign=x%2By%26z%22$')}").query
    assert (
        dict(again)
        == {"token": original["token"], "sign": original["sign"]}
        == {
            "token": "a b/c=",
            "sign": 'x+y&z"$',
        }
    )


def test_every_playlist_uri_carries_the_query() -> None:
    query = carried("token=a+b/c%3D&_HLS_msn=3")
    seg = Segmenter(
        tracks(), segment_duration=1.0, part_duration=0.2, window=4, with_ts=False, clock=lambda: 1e9
    )
    feed(seg, 2.5)
    ll = playlists.media_playlist(seg, low_latency=True, ts=False, query=query)
    uris = re.findall(r'URI="([^"]*)"', ll) + [x for x in ll.splitlines() if x and not x.startswith("#")]
    assert len(uris) > 10 and all(uri.endswith("?token=a%20b%2Fc%3D") for uri in uris), uris
    assert "_HLS" not in ll
    encrypted = make()
    feed(encrypted, 3.1)
    text = playlists.media_playlist(encrypted, low_latency=False, ts=True, query=query)
    assert [q for _, q, _ in KEY_LINE.findall(text)] == [query] * 3
    assert all(x.endswith(query) for x in text.splitlines() if x.startswith("seg"))
    master = playlists.master_playlist(seg, f"stream.m3u8{query}", ts=False)
    assert "\nstream.m3u8?token=a%20b%2Fc%3D\n" in master


def test_mpd_templates_carry_the_query_escaped_for_xml_and_templates() -> None:
    seg = Segmenter(
        tracks(), segment_duration=1.0, part_duration=0.2, window=4, with_ts=False, clock=lambda: 1e9
    )
    feed(seg, 3.1)
    query = '?token=a%20b&expires=1&odd=$<"&'  # credentials_query never makes $ < " &; be safe anyway
    root = ET.fromstring(playlists.mpd(seg, 1e9 + 5, "http://h/api/v1/time", query))
    templates = root.findall(".//{urn:mpeg:dash:schema:mpd:2011}SegmentTemplate")
    assert len(templates) == 2
    for template in templates:
        assert template.get("media", "").endswith('-$Number$.m4s?token=a%20b&expires=1&odd=$$<"&')
        assert template.get("initialization", "").endswith('.mp4?token=a%20b&expires=1&odd=$$<"&')


def test_shared_rendering_with_a_marker_equals_rendering_per_viewer() -> None:
    """The HLS service renders once with a marker and substitutes each viewer's query."""
    seg = Segmenter(
        tracks(), segment_duration=1.0, part_duration=0.2, window=4, with_ts=False, clock=lambda: 1e9
    )
    feed(seg, 2.5)
    query = carried("token=abc&sign=s%2F1")
    marked = playlists.media_playlist(seg, low_latency=True, ts=False, query="\x1f")
    assert marked.replace("\x1f", query) == playlists.media_playlist(
        seg, low_latency=True, ts=False, query=query
    )
