"""ffmpeg publishes into, and plays from, a minimal asyncio server built on RtmpServerConnection.

This checks the sans-IO core against an independent implementation (ffmpeg's RTMP client, which
does the digest handshake and verifies our S1/S2) without the rest of the server.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from streamhive.protocols.rtmp import messages
from streamhive.protocols.rtmp.chunk import encode_message
from streamhive.protocols.rtmp.connection import (
    AUDIO_CSID,
    VIDEO_CSID,
    Connected,
    Event,
    MediaReceived,
    MetadataReceived,
    PlayRequested,
    PublishRequested,
    RtmpServerConnection,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed"),
]


@dataclass
class Session:
    """What one connection saw, plus the recorded media a player connection replays."""

    replay: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    digest: bool = False
    error: Exception | None = None


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session) -> None:
    conn = RtmpServerConnection()
    try:
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                session.events.append(event)
                if isinstance(event, PublishRequested):
                    conn.accept_publish(event.stream_id, event.name)
                elif isinstance(event, PlayRequested):
                    conn.accept_play(event.stream_id, event.name)
                    writer.write(conn.data_to_send())
                    for media in session.replay:
                        if isinstance(media, MetadataReceived):
                            writer.write(
                                messages.encode_metadata(event.stream_id, media.values, conn.out_chunk_size)
                            )
                        elif isinstance(media, MediaReceived):
                            csid, type_id = (
                                (VIDEO_CSID, messages.VIDEO)
                                if media.kind == "video"
                                else (AUDIO_CSID, messages.AUDIO)
                            )
                            writer.write(
                                encode_message(
                                    csid,
                                    type_id,
                                    event.stream_id,
                                    media.timestamp,
                                    media.payload,
                                    conn.out_chunk_size,
                                )
                            )
                    conn.send_stream_eof(event.stream_id, event.name)
                    writer.write(conn.data_to_send())
                    await writer.drain()
                    return
            session.digest = session.digest or conn.digest_handshake
            writer.write(conn.data_to_send())
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # ffmpeg exits right after deleteStream; unread acks in its buffer make that a reset
    except Exception as exc:  # surfaced by the test's assertions
        session.error = exc
    finally:
        writer.close()


async def _run_ffmpeg(session: Session, *args: str) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(r, w, session), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"rtmp://127.0.0.1:{port}/live/test"
    async with server:
        proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            *[url if a == "URL" else a for a in args],
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert session.error is None, repr(session.error)
    assert proc.returncode == 0, stderr.decode(errors="replace")


async def test_ffmpeg_publishes_into_core_and_plays_back(tmp_path: Path) -> None:
    published = Session()
    await _run_ffmpeg(
        published,
        "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "2",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "flv", "URL",
    )  # fmt: skip
    events = published.events
    assert published.digest  # ffmpeg sent a digest C1 and accepted our S1/S2 digests
    connected = [e for e in events if isinstance(e, Connected)]
    assert len(connected) == 1 and connected[0].app == "live"
    assert [e.name for e in events if isinstance(e, PublishRequested)] == ["test"]
    assert any(isinstance(e, MetadataReceived) and e.values.get("width") == 320 for e in events)
    video = [e for e in events if isinstance(e, MediaReceived) and e.kind == "video"]
    assert len(video) >= 40
    assert video[0].payload[:2] == b"\x17\x00"  # AVC keyframe, sequence header first
    assert any(isinstance(e, MediaReceived) and e.kind == "audio" for e in events)

    played = Session(replay=events)
    out = tmp_path / "played.flv"
    await _run_ffmpeg(played, "-i", "URL", "-c", "copy", "-f", "flv", str(out))
    assert [e.name for e in played.events if isinstance(e, PlayRequested)] == ["test"]
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.width == 320
        frames = sum(1 for p in container.demux(video=0) if p.size)
    assert frames >= 40
