"""HLS playlists (RFC 8216bis, with LL-HLS) and the DASH MPD, written from a Segmenter's state.

Pure functions of the segmenter: no I/O, no clock except the ``now`` passed in.

Every URI they write ends with ``query``: the viewer's credentials (``credentials_query``), so
players that only know the playlist URL keep proving who they are on keys and segments. The
HTTP layer renders a shared playlist once with a marker there and substitutes each viewer's.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote

from ..auth import CREDENTIAL_PARAMS
from ..formats import fmp4
from .segmenter import CLOCK, Segment, Segmenter

#: How many of the newest segments keep their parts listed in an LL-HLS playlist.
PART_SEGMENTS = 3


def credentials_query(params: Iterable[tuple[str, str]]) -> str:
    """``?name=value&...`` for the credential parameters among decoded ``params``, or "".

    Values are percent-encoded again in full (no ``+``, ``/``, ``"`` or ``&`` left), so they
    decode to exactly what the playlist request carried and cannot break a quoted playlist
    attribute or the MPD's XML.
    """
    pairs = [f"{name}={quote(value, safe='')}" for name, value in params if name in CREDENTIAL_PARAMS]
    return "?" + "&".join(pairs) if pairs else ""


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def target_duration(seg: Segmenter) -> int:
    """RFC 8216bis: every EXTINF, rounded to the nearest integer, is at most the target."""
    longest = max((s.duration for s in seg.segments), default=seg.segment_duration)
    return max(1, math.floor(max(seg.segment_duration, longest) + 0.5))


def part_target(seg: Segmenter) -> float:
    """At least every listed part's duration (millisecond RTMP clocks make parts 1 ms long)."""
    listed = [seg.current] if seg.current is not None else []
    longest = max((p.duration for s in [*seg.segments, *listed] for p in s.parts), default=0.0)
    return max(seg.part_duration, longest)


def bandwidth(seg: Segmenter) -> int:
    """Peak bits per second over the window's segments (what players size their buffers on)."""
    rates = [len(s.data) * 8 / s.duration for s in seg.segments if s.duration > 0]
    return int(max(rates, default=1_000_000))


def codecs(seg: Segmenter) -> str:
    return ",".join(fmp4.codecs_string(seg.tracks[i]) for i in seg.track_indexes)


def master_playlist(seg: Segmenter, media_uri: str, ts: bool) -> str:
    """One rendition today; transcoded renditions will add EXT-X-STREAM-INF lines here."""
    attrs = [f"BANDWIDTH={bandwidth(seg)}", f'CODECS="{codecs(seg)}"']
    video = next((seg.tracks[i] for i in seg.track_indexes if seg.tracks[i].kind == "video"), None)
    if video is not None and video.width and video.height:
        attrs.append(f"RESOLUTION={video.width}x{video.height}")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{3 if ts else 9}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    lines += [f"#EXT-X-STREAM-INF:{','.join(attrs)}", media_uri, ""]
    return "\n".join(lines)


def media_playlist(
    seg: Segmenter, *, low_latency: bool, ts: bool, skip: bool = False, query: str = ""
) -> str:
    """The media playlist; ``skip`` answers ``_HLS_skip=YES`` with a delta update.

    Encrypted segments each get an ``EXT-X-KEY`` with their own explicit IV (the IV is the
    media sequence number, and an IV attribute applies until the next key tag). Init sections
    stay clear: every ``EXT-X-MAP`` is written while no key is in force (``METHOD=NONE`` first
    when one is), which is how RFC 8216 §4.3.2.5 says a clear init is declared and what hls.js
    and ffmpeg follow.
    """
    if low_latency and seg.keys is not None:
        raise ValueError("LL-HLS parts cannot be AES-128 encrypted: serve the fmp4 variant")
    target = target_duration(seg)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{3 if ts else 9}", f"#EXT-X-TARGETDURATION:{target}"]
    segments = list(seg.segments)
    skip_until = 6 * target
    if low_latency:
        part = part_target(seg)
        control = f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part:.3f},CAN-SKIP-UNTIL={skip_until:.1f}"
        lines += [f"#EXT-X-SERVER-CONTROL:{control}", f"#EXT-X-PART-INF:PART-TARGET={part:.3f}"]
    first = segments[0].msn if segments else (seg.current.msn if seg.current else 0)
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    skipped = 0
    if skip and low_latency:
        total = sum(s.duration for s in segments)
        while skipped < len(segments) and total - segments[skipped].duration >= skip_until:
            total -= segments[skipped].duration
            skipped += 1
        if skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    listed = segments[skipped:]
    if seg.current is not None and seg.current.parts and low_latency:
        listed.append(seg.current)
    init_version: int | None = None
    encrypted = False  # whether an AES-128 key is in force at this point of the playlist
    for index, segment in enumerate(listed):
        if segment.discontinuity and index > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if not ts and segment.init_version != init_version:
            if encrypted:
                lines.append("#EXT-X-KEY:METHOD=NONE")
                encrypted = False
            lines.append(f'#EXT-X-MAP:URI="init{segment.init_version}.mp4{query}"')
            init_version = segment.init_version
        if segment.key_id is not None:
            lines.append(
                f'#EXT-X-KEY:METHOD=AES-128,URI="key{segment.key_id}.key{query}",IV=0x{segment.msn:032X}'
            )
            encrypted = True
        elif encrypted:
            lines.append("#EXT-X-KEY:METHOD=NONE")
            encrypted = False
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso_time(segment.program_time)}")
        if low_latency and (not segment.complete or index >= len(listed) - PART_SEGMENTS):
            lines += [_part_line(segment, part.index, query) for part in segment.parts]
        if segment.complete:
            lines += [f"#EXTINF:{segment.duration:.5f},", f"seg{segment.msn}.{'ts' if ts else 'm4s'}{query}"]
    if seg.ended:
        lines.append("#EXT-X-ENDLIST")
    elif low_latency and seg.current is not None:
        hint = f"seg{seg.current.msn}.{len(seg.current.parts)}.m4s{query}"
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    lines.append("")
    return "\n".join(lines)


def _part_line(segment: Segment, index: int, query: str) -> str:
    part = segment.parts[index]
    independent = ",INDEPENDENT=YES" if part.independent else ""
    uri = f"seg{segment.msn}.{index}.m4s{query}"
    return f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{uri}"{independent}'


def mpd(seg: Segmenter, now: float, utc_url: str, query: str = "") -> str:
    """A dynamic MPD over the same CMAF segments, one AdaptationSet per track.

    ``query`` is appended to the SegmentTemplate URLs (escaped for a template: ``$$``; and for
    XML), as dash.js does not carry the MPD's query to segments by itself.
    """
    anchor = seg.anchor
    # One Period: only the segments of the current init (a codec change or a new publisher
    # starts the timeline again).
    segments = [s for s in seg.segments if s.init_version == seg.init_version]
    anchor_dts, anchor_wall = anchor if anchor else (0, now)
    window = sum(s.duration for s in segments) or seg.segment_duration
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,'
        'http://dashif.org/guidelines/dash-if-simple"'
        f' type="{"static" if seg.ended else "dynamic"}" availabilityStartTime="{iso_time(anchor_wall)}"'
        f' publishTime="{iso_time(now)}" minimumUpdatePeriod="{_duration(seg.segment_duration)}"'
        f' minBufferTime="{_duration(2 * seg.segment_duration)}" timeShiftBufferDepth="{_duration(window)}"'
        f' suggestedPresentationDelay="{_duration(3 * seg.segment_duration)}"'
        + (f' mediaPresentationDuration="{_duration(window)}"' if seg.ended else "")
        + ">\n"
    )
    body = ['<Period id="0" start="PT0S">']
    template_query = html.escape(query.replace("$", "$$"), quote=True)
    for track_index in seg.track_indexes:
        body.append(_adaptation_set(seg, track_index, segments, anchor_dts, template_query))
    body.append("</Period>")
    utc = f'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="{utc_url}"/>'
    return head + "\n".join(body) + f"\n{utc}\n</MPD>\n"


def _adaptation_set(
    seg: Segmenter, track_index: int, segments: list[Segment], anchor_dts: int, query: str
) -> str:
    track = seg.tracks[track_index]
    scale = fmp4.timescale(track)

    def units(dts: int) -> int:
        return (dts * scale + CLOCK // 2) // CLOCK

    timeline = []
    for segment in segments:
        start = units(segment.start_dts)
        end = units(segment.start_dts + round(segment.duration * CLOCK))
        timeline.append(f'<S t="{start}" d="{end - start}"/>')
    start_number = segments[0].msn if segments else 0
    rep_id = f"t{track_index}"
    kind = track.kind
    attrs = f'id="{rep_id}" codecs="{fmp4.codecs_string(track)}" bandwidth="{bandwidth(seg)}"'
    if kind == "video" and track.width and track.height:
        attrs += f' width="{track.width}" height="{track.height}"'
    if kind == "audio" and track.sample_rate:
        attrs += f' audioSamplingRate="{track.sample_rate}"'
    template = (
        f'<SegmentTemplate timescale="{scale}" presentationTimeOffset="{units(anchor_dts)}"'
        f' startNumber="{start_number}" initialization="dash-{rep_id}-init{seg.init_version}.mp4{query}"'
        f' media="dash-{rep_id}-$Number$.m4s{query}"><SegmentTimeline>{"".join(timeline)}</SegmentTimeline>'
        "</SegmentTemplate>"
    )
    return (
        f'<AdaptationSet id="{track_index}" contentType="{kind}" mimeType="{kind}/mp4" segmentAlignment="true"'
        f' startWithSAP="1"><Representation {attrs}>{template}</Representation></AdaptationSet>'
    )
