"""Real bitstreams for tests, made with PyAV's encoders (no fixture files to go stale)."""

from __future__ import annotations

import functools
import io

import av

X265 = ("x265-params", "log-level=none:pools=none:frame-threads=1")


@functools.cache
def encode_video(
    encoder: str, width: int, height: int, pix_fmt: str = "yuv420p", params: str = "", profile: str = ""
) -> tuple[bytes, list[bytes]]:
    """Encode five frames into MP4 and read back (avcC/hvcC extradata, [length-prefixed samples])."""
    av.logging.set_level(av.logging.ERROR)
    # Encoders single-threaded: threaded, a loaded machine sometimes got packets the MP4 muxer
    # refused ("not yet implemented"), failing tests at random.
    key, base = ("x264-params", "log-level=none") if encoder == "libx264" else X265
    options = {key: base + (":" + params if params else "")}
    if profile:
        options["profile"] = profile
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(encoder, rate=25, options=options)
        stream.codec_context.thread_count = 1
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(5):
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane in frame.planes:
                plane.update(bytes((i * 37 + k) & 0xFF for k in range(plane.buffer_size)))
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(io.BytesIO(buf.getvalue())) as inp:
        video = inp.streams.video[0]
        return video.codec_context.extradata, [bytes(p) for p in inp.demux(video) if p.size]
