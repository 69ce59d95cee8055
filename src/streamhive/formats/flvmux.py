"""The FLV muxer for HTTP-FLV and WS-FLV readers: hub Frames in, FLV tags out."""

from __future__ import annotations

from ..hub.frame import Frame, Track
from . import flv


def stream_metadata(tracks: list[Track], published: dict[str, object]) -> dict[str, object]:
    """onMetaData for readers: what the publisher sent, corrected by what the tracks really are."""
    meta = {k: v for k, v in published.items() if k not in ("duration", "filesize")}
    meta.update(flv.metadata_for(tracks))
    return meta


def config_tags(tracks: list[Track], timestamp_ms: int = 0) -> bytes:
    """Sequence-header tags for every track that has codec configuration."""
    out = []
    for track in tracks:
        if track.kind == "video" and track.config:
            out.append(flv.encode_tag(flv.TAG_VIDEO, timestamp_ms, flv.video_config_body(track)))
        elif track.kind == "audio" and track.config:
            out.append(flv.encode_tag(flv.TAG_AUDIO, timestamp_ms, flv.audio_config_body(track)))
    return b"".join(out)


class FlvMuxer:
    """One FLV byte stream per Stream, shared by every FLV reader (mux once, write many)."""

    def __init__(self, tracks: list[Track]) -> None:
        self.tracks = tracks

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        has_audio = any(t.kind == "audio" for t in tracks)
        has_video = any(t.kind == "video" for t in tracks)
        script = flv.encode_tag(
            flv.TAG_SCRIPT, 0, flv.script_tag_body("onMetaData", stream_metadata(tracks, metadata))
        )
        return flv.file_header(has_audio, has_video) + script + config_tags(tracks)

    def frame(self, frame: Frame) -> bytes:
        track = self.tracks[frame.track]
        ts = frame.dts // 90
        if track.kind == "video":
            return flv.encode_tag(flv.TAG_VIDEO, ts, flv.video_frame_body(track, frame))
        return flv.encode_tag(flv.TAG_AUDIO, ts, flv.audio_frame_body(track, frame))

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return config_tags(tracks)
