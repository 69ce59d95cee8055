"""HLS with AES-128: ffmpeg and hls.js play encrypted TS and fMP4 with rotating keys; the raw
segments are ciphertext that decrypts to media; keys, parts and DASH are guarded; credentials in
the playlist URL reach every URI a player fetches.

Tokens: on the open paths the ``token`` below is only carried, not checked;
``test_keys_need_the_token`` puts a path under ``read_auth: [jwt]``. To run any other test here
against a protected path, put a valid token in ``TOKEN_QUERY`` and its re-encoded form in
``CARRIED``: every request these tests and hls.js make then carries it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import jwt
import pytest
import yarl

from tests.conftest import RunningServer, needs_ffmpeg, probe, publishing, record, video_dts
from tests.interop.test_browser_players import CHROMIUM, HLS_JS, HLS_START, assert_played, browser, watch
from tests.interop.test_hls import assert_continuous
from tests.unit.test_hls_crypto import decrypt

pytestmark = [pytest.mark.interop, needs_ffmpeg]

__all__ = ["browser"]  # the Chromium fixture, shared with the other browser tests

CONFIG = """paths:
  live/enc:
    hls_variant: mpegts
    hls_encryption: aes-128
    hls_key_rotation: 2
    hls_segment_count: 4
  live/encf:
    hls_variant: fmp4
    hls_encryption: aes-128
    hls_key_rotation: 2
  live/encll:
    hls_encryption: aes-128
  live/encauth:
    hls_variant: fmp4
    hls_encryption: aes-128
    read_auth: [jwt]
auth:
  jwt:
    secret: "hls-crypto-test-secret-0123456789"
"""
#: Credentials as a user would paste them (``+`` for a space, ``%3D``), with an LL-HLS parameter
#: that must not be carried on; and how the server carries the credentials into every URI.
TOKEN_QUERY = "token=a+b/c%3D&_HLS_msn=3"
CARRIED = "?token=a%20b%2Fc%3D"

KEY = re.compile(r'#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)",IV=0x([0-9A-F]{32})')


@pytest.fixture
def enc_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(CONFIG)


def url(base: str, uri: str) -> yarl.URL:
    """``uri`` from a playlist, resolved against ``base`` and sent exactly as written."""
    return yarl.URL(str(yarl.URL(base).join(yarl.URL(uri, encoded=True))), encoded=True)


async def fetch(http: aiohttp.ClientSession, base: str, uri: str) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url(base, uri)) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def playlist_listing(http: aiohttp.ClientSession, base: str, segments: int) -> str:
    """The media playlist once it lists ``segments`` segments (the first request answers at one)."""
    for _ in range(150):
        status, body, _ = await fetch(http, base, f"stream.m3u8{CARRIED}")
        assert status == 200, body
        if body.count(b"#EXTINF") >= segments:
            return body.decode()
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {segments} segments: {body!r}")


def keyed_segments(playlist: str) -> list[tuple[str, str, bytes]]:
    """(segment URI, key URI, IV) of every segment, from the EXT-X-KEY in force before it."""
    out, key = [], None
    for line in playlist.splitlines():
        if match := KEY.match(line):
            key = (match[1], bytes.fromhex(match[2]))
        elif line and not line.startswith("#"):
            assert key is not None, playlist
            out.append((line, *key))
    return out


@pytest.mark.parametrize("path", ["live/enc", "live/encf", "live/encll"])
async def test_ffmpeg_decodes_encrypted_hls(enc_server: RunningServer, tmp_path: Path, path: str) -> None:
    """TS and fMP4 with keys rotating every 2 segments; LL-HLS with encryption falls back to fMP4."""
    server = enc_server
    async with publishing(server, path, 16):
        out = tmp_path / "out.mkv"
        await record(f"{server.http}/{path}/index.m3u8?{TOKEN_QUERY}", out, 5, 40)
        media = await probe(out)
    video, audio = media["video"], media["audio"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert int(video["nb_read_frames"]) >= 110  # type: ignore[arg-type]  # 5 s at 25 fps
    assert audio["codec_name"] == "aac" and int(audio["nb_read_frames"]) >= 180  # type: ignore[arg-type]
    assert_continuous(await video_dts(out))


@pytest.mark.parametrize("path", ["live/enc", "live/encf"])
async def test_raw_segment_is_ciphertext_that_decrypts_to_media(
    enc_server: RunningServer, tmp_path: Path, path: str
) -> None:
    server = enc_server
    base = f"{server.http}/{path}/"
    async with publishing(server, path, 16), aiohttp.ClientSession() as http:
        status, body, _ = await fetch(http, base, f"index.m3u8?{TOKEN_QUERY}&other=1")
        master = body.decode()
        assert status == 200 and f"\nstream.m3u8{CARRIED}\n" in master, master
        playlist = await playlist_listing(http, base, 3)
        uris = re.findall(r'URI="([^"]+)"', playlist) + [x for x in playlist.splitlines() if x[:1] not in "#"]
        assert uris and all(uri.endswith(CARRIED) for uri in uris), playlist
        assert "_HLS" not in playlist and "other" not in playlist
        segments = keyed_segments(playlist)
        assert len({key for _, key, _ in segments}) >= 2, playlist  # rotated within the window
        segment_uri, key_uri, iv = segments[-1]
        assert iv == int(re.search(r"seg(\d+)", segment_uri)[1]).to_bytes(16, "big")  # type: ignore[index]
        status, key, headers = await fetch(http, base, key_uri)
        assert status == 200 and len(key) == 16
        assert (
            headers["Content-Type"] == "application/octet-stream" and headers["Cache-Control"] == "no-store"
        )
        status, encrypted, _ = await fetch(http, base, segment_uri)
        assert status == 200 and len(encrypted) % 16 == 0
        clear = decrypt(encrypted, key, iv)
        if path == "live/enc":
            assert not all(encrypted[i] == 0x47 for i in range(0, 188 * 4, 188))
            assert all(clear[i] == 0x47 for i in range(0, len(clear), 188)) and len(clear) % 188 == 0
            media_file = tmp_path / "segment.ts"
            media_file.write_bytes(clear)
        else:
            assert encrypted[4:8] not in (b"moof", b"styp") and clear[4:8] == b"moof"
            init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)[1]  # type: ignore[index]
            status, init, _ = await fetch(http, base, init_uri)
            assert status == 200 and init[4:8] == b"ftyp"  # init sections stay clear
            media_file = tmp_path / "segment.mp4"
            media_file.write_bytes(init + clear)
    media = await probe(media_file)
    assert (media["video"]["codec_name"], media["video"]["width"]) == ("h264", 320)
    assert int(media["video"]["nb_read_frames"]) >= 20  # type: ignore[arg-type]  # ~1 s segment


async def test_keys_parts_dash_and_the_low_latency_fallback(enc_server: RunningServer) -> None:
    server = enc_server
    async with (
        publishing(server, "live/enc", 30),
        publishing(server, "live/encll", 30),
        aiohttp.ClientSession() as http,
    ):
        ll = f"{server.http}/live/encll/"
        for _ in range(2):
            status, body, _ = await fetch(http, ll, "stream.m3u8")
            playlist = body.decode()
            assert status == 200 and "#EXT-X-PART" not in playlist and "#EXT-X-MAP" in playlist
        keys = {key for _, key, _ in keyed_segments(playlist)}
        assert len(keys) == 1, playlist  # hls_key_rotation 0: one key while published
        for uri, status in (("seg0.0.m4s", 404), ("index.mpd", 403), ("dash-t0-init0.mp4", 403)):
            got, body, _ = await fetch(http, ll, uri)
            assert got == status, (uri, body)
        _, body, _ = await fetch(http, ll, "index.mpd")
        assert b"encrypted" in body
        assert server.log().count("LL-HLS parts cannot be AES-128 encrypted") == 1

        # live/enc lists 4 segments and rotates every 2: key0 is forgotten once 0 and 1 are gone.
        ts = f"{server.http}/live/enc/"
        for _ in range(200):
            _, body, _ = await fetch(http, ts, "stream.m3u8")
            first = int(re.search(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)", body)[1])  # type: ignore[index]
            if first >= 2:
                break
            await asyncio.sleep(0.1)
        assert b'URI="key0.key"' not in body
        for uri in ("key0.key", "key99999.key", "key1" + "0" * 5000 + ".key"):
            status, _, _ = await fetch(http, ts, uri)
            assert status == 404, uri
        for _, key_uri, _ in keyed_segments(body.decode()):
            status, key, _ = await fetch(http, ts, key_uri)
            assert status == 200 and len(key) == 16


async def test_keys_need_the_token(enc_server: RunningServer, tmp_path: Path) -> None:
    """Keys are authorized on every request; a client without the token gets no key."""
    server = enc_server
    token = jwt.encode(
        {"actions": ["read"], "paths": ["live/encauth"], "exp": int(time.time()) + 600},
        "hls-crypto-test-secret-0123456789",
        algorithm="HS256",
    )
    carried = f"?token={token}"  # a JWT is URL-safe: carried as is
    base = f"{server.http}/live/encauth/"
    async with publishing(server, "live/encauth", 20), aiohttp.ClientSession() as http:
        status, _, _ = await fetch(http, base, "index.m3u8")
        assert status in (401, 403)
        status, body, _ = await fetch(http, base, f"index.m3u8?token={token}&_HLS_msn=1")
        assert status == 200 and f"\nstream.m3u8{carried}\n" in body.decode()
        status, body, _ = await fetch(http, base, f"stream.m3u8{carried}")
        segment_uri, key_uri, _ = keyed_segments(body.decode())[-1]
        assert key_uri.endswith(carried) and segment_uri.endswith(carried)
        status, key, _ = await fetch(http, base, key_uri)
        assert status == 200 and len(key) == 16
        for bare in (key_uri.split("?")[0], f"{key_uri.split('?')[0]}?token=forged.{token}"):
            status, body, _ = await fetch(http, base, bare)
            assert status in (401, 403) and body != key, bare
        # Media needs the token too; with it, a segment is ciphertext (useless without the key).
        status, _, _ = await fetch(http, base, segment_uri.split("?")[0])
        assert status in (401, 403)
        status, encrypted, _ = await fetch(http, base, segment_uri)
        assert status == 200 and encrypted[4:8] != b"moof"
        out = tmp_path / "out.mkv"
        await record(f"{base}index.m3u8?token={token}", out, 3, 40)
    media = await probe(out)
    assert media["video"]["codec_name"] == "h264" and int(media["video"]["nb_read_frames"]) >= 65  # type: ignore[arg-type]


@pytest.mark.skipif(CHROMIUM is None or not HLS_JS.exists(), reason="Chromium/hls.js missing")
@pytest.mark.parametrize("path", ["live/encf", "live/enc"])
async def test_hls_js_plays_encrypted_hls(enc_server: RunningServer, browser: object, path: str) -> None:
    server = enc_server
    requests: list[str] = []
    browser.on("request", lambda request: requests.append(request.url))  # type: ignore[attr-defined]
    async with publishing(server, path):
        url = f"{server.http}/{path}/index.m3u8?{TOKEN_QUERY}"
        state = await watch(browser, HLS_JS, HLS_START, url, 12)
    assert_played(state, 10)
    ours = [u for u in requests if u.startswith(f"{server.http}/{path}/") and "index.m3u8" not in u]
    assert ours and all(CARRIED in u for u in ours), ours  # hls.js kept sending the credentials
    keys = {u.split("?")[0] for u in ours if u.split("?")[0].endswith(".key")}
    assert len(keys) >= 3, ours  # it fetched the rotating keys
