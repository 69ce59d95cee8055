"""The RTMP muxer for players: hub Frames in, whole RTMP messages (already chunked) out.

Every player of a stream gets the same bytes, so they are encoded once per frame with the
server's fixed chunk size, the play stream id and fmt-0 headers (no per-player delta state).
"""

from __future__ import annotations

from ...formats import amf0, flv
from ...formats.flvmux import carried, frame_body, stream_metadata
from ...hub.frame import Frame, Track
from .chunk import encode_message
from .messages import AUDIO_CSID, DATA_CSID, VIDEO_CSID

MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA_AMF0 = 18


class RtmpMuxer:
    def __init__(self, tracks: list[Track], chunk_size: int, stream_id: int) -> None:
        self.tracks = tracks
        self.chunk_size = chunk_size
        self.stream_id = stream_id

    def _message(self, csid: int, type_id: int, timestamp_ms: int, payload: bytes) -> bytes:
        return encode_message(
            csid, type_id, self.stream_id, timestamp_ms & 0xFFFFFFFF, payload, self.chunk_size
        )

    def _configs(self, tracks: list[Track]) -> bytes:
        out = []
        for track in tracks:
            if not carried(track):
                continue
            if track.kind == "video" and track.config:
                out.append(self._message(VIDEO_CSID, MSG_VIDEO, 0, flv.video_config_body(track)))
            elif track.kind == "audio" and track.config:
                out.append(self._message(AUDIO_CSID, MSG_AUDIO, 0, flv.audio_config_body(track)))
        return b"".join(out)

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        meta = amf0.encode("onMetaData", amf0.EcmaArray(stream_metadata(tracks, metadata)))
        return self._message(DATA_CSID, MSG_DATA_AMF0, 0, meta) + self._configs(tracks)

    def frame(self, frame: Frame) -> bytes:
        """RTMP messages are FLV tag bodies: types 8/9 are the FLV tag types, as are the bodies."""
        body = frame_body(self.tracks[frame.track], frame)
        if body is None:
            return b""  # MJPEG, G.711 at other rates...: RTMP players get the other tracks
        tag_type, payload = body
        csid = VIDEO_CSID if tag_type == MSG_VIDEO else AUDIO_CSID
        return self._message(csid, tag_type, frame.dts // 90, payload)

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return self._configs(tracks)
