"""FLV audio/video tag bodies into a Stream: shared by RTMP publishers and pulled RTMP sources."""

from __future__ import annotations

from ..formats import flv
from ..hub import Stream


class FlvIngest:
    """Sequence headers become Tracks, frames become Frames; frames before their config are dropped."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.indexes: dict[str, int] = {}
        self.length_size = 4

    def media(self, kind: str, payload: bytes, timestamp_ms: int) -> None:
        """One RTMP audio/video message body (raises FlvError/CodecError when malformed)."""
        stream = self.stream
        pkt = flv.parse_video_body(payload) if kind == "video" else flv.parse_audio_body(payload)
        if pkt.kind == "config":
            if kind == "video":
                track = flv.track_from_video_config(pkt)  # type: ignore[arg-type]
                self.length_size = int(track.extra.get("nal_length_size", 4))  # type: ignore[call-overload]
            else:
                track = flv.track_from_audio_config(pkt)  # type: ignore[arg-type]
            self.indexes[kind] = stream.set_track(track)
            return
        if pkt.kind != "frame":
            return
        index = self.indexes.get(kind)
        if index is None:
            if pkt.codec != "mp3":
                return  # a frame before its codec configuration cannot be decoded by anyone
            index = self.indexes["audio"] = stream.set_track(flv.track_from_mp3(payload))
        if kind == "video":
            frame = flv.frame_from_video(pkt, index, timestamp_ms, self.length_size)  # type: ignore[arg-type]
        else:
            frame = flv.frame_from_audio(pkt, index, timestamp_ms)  # type: ignore[arg-type]
        stream.write(frame)
