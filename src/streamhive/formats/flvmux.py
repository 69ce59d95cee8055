"""The FLV muxer for HTTP-FLV and WS-FLV readers: hub Frames in, FLV tags out.

Tracks FLV cannot carry (MJPEG, G.711 at other rates than 8 kHz mono, ...) are left out rather
than failing the stream: a reader still gets every track FLV can play.
"""

from __future__ import annotations

from ..hub.frame import Frame, Track
from . import flv

#: Codecs FLV carries, in legacy tags or Enhanced RTMP.
_FLV_CODECS = frozenset(("h264", "h265", "av1", "vp9", "aac", "opus", "mp3", "pcma", "pcmu"))
#: Audio every FLV player decodes (legacy tags); Opus, carried only by Enhanced RTMP, reaches
#: RTMP/FLV players transcoded to AAC (Stream.readable_with).
PLAYER_AUDIO = frozenset(("aac", "mp3", "pcma", "pcmu"))
#: Legacy sound formats for G.711 (7 A-law, 8 mu-law), defined only for 8 kHz mono; the flags
#: byte says "5.5 kHz, 16-bit, mono" as FFmpeg writes it, and players take 8 kHz from the format.
_G711_FLAGS = {"pcma": bytes((7 << 4 | 0x02,)), "pcmu": bytes((8 << 4 | 0x02,))}


def carried(track: Track) -> bool:
    """Whether FLV can carry this track."""
    if track.codec in _G711_FLAGS:
        return (track.sample_rate or 8000) == 8000 and (track.channels or 1) == 1
    return track.codec in _FLV_CODECS


def stream_metadata(tracks: list[Track], published: dict[str, object]) -> dict[str, object]:
    """onMetaData for readers: what the publisher sent, corrected by what the tracks really are."""
    meta = {k: v for k, v in published.items() if k not in ("duration", "filesize")}
    usable = [t for t in tracks if carried(t)]
    meta.update(flv.metadata_for([t for t in usable if t.codec not in _G711_FLAGS]))
    audio = next((t for t in usable if t.kind == "audio"), None)
    if audio is not None and audio.codec in _G711_FLAGS:
        meta.update(
            audiocodecid=float(_G711_FLAGS[audio.codec][0] >> 4),
            audiosamplerate=8000.0,
            audiosamplesize=16.0,
            stereo=False,
        )
    return meta


def frame_body(track: Track, frame: Frame) -> tuple[int, bytes] | None:
    """(tag type, body) of one frame, or None when FLV cannot carry the track."""
    if not carried(track):
        return None
    if track.kind == "video":
        return flv.TAG_VIDEO, flv.video_frame_body(track, frame)
    flags = _G711_FLAGS.get(track.codec)
    if flags is not None:
        return flv.TAG_AUDIO, b"".join((flags, *frame.units))
    return flv.TAG_AUDIO, flv.audio_frame_body(track, frame)


def config_tags(tracks: list[Track], timestamp_ms: int = 0) -> bytes:
    """Sequence-header tags for every track that has codec configuration."""
    out = []
    for track in tracks:
        if not track.config or not carried(track):
            continue
        if track.kind == "video":
            out.append(flv.encode_tag(flv.TAG_VIDEO, timestamp_ms, flv.video_config_body(track)))
        else:
            out.append(flv.encode_tag(flv.TAG_AUDIO, timestamp_ms, flv.audio_config_body(track)))
    return b"".join(out)


class FlvMuxer:
    """One FLV byte stream per Stream, shared by every FLV reader (mux once, write many)."""

    def __init__(self, tracks: list[Track]) -> None:
        self.tracks = tracks

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        has_audio = any(t.kind == "audio" and carried(t) for t in tracks)
        has_video = any(t.kind == "video" and carried(t) for t in tracks)
        script = flv.encode_tag(
            flv.TAG_SCRIPT, 0, flv.script_tag_body("onMetaData", stream_metadata(tracks, metadata))
        )
        return flv.file_header(has_audio, has_video) + script + config_tags(tracks)

    def frame(self, frame: Frame) -> bytes:
        tag = frame_body(self.tracks[frame.track], frame)
        if tag is None:
            return b""
        return flv.encode_tag(tag[0], frame.dts // 90, tag[1])

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return config_tags(tracks)
