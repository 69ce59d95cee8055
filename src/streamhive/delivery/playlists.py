"""HLS playlists (RFC 8216bis, with LL-HLS) and the DASH MPD, written from a Segmenter's state.

Pure functions of the segmenter: no I/O, no clock except the ``now`` passed in.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..formats import fmp4
from .segmenter import CLOCK, Segment, Segmenter

#: How many of the newest segments keep their parts listed in an LL-HLS playlist.
PART_SEGMENTS = 3


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


def media_playlist(seg: Segmenter, *, low_latency: bool, ts: bool, skip: bool = False) -> str:
    """The media playlist; ``skip`` answers ``_HLS_skip=YES`` with a delta update."""
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
    for index, segment in enumerate(listed):
        if segment.discontinuity and index > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if not ts and segment.init_version != init_version:
            lines.append(f'#EXT-X-MAP:URI="init{segment.init_version}.mp4"')
            init_version = segment.init_version
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso_time(segment.program_time)}")
        if low_latency and (not segment.complete or index >= len(listed) - PART_SEGMENTS):
            lines += [_part_line(segment, part.index) for part in segment.parts]
        if segment.complete:
            lines += [f"#EXTINF:{segment.duration:.5f},", f"seg{segment.msn}.{'ts' if ts else 'm4s'}"]
    if seg.ended:
        lines.append("#EXT-X-ENDLIST")
    elif low_latency and seg.current is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{seg.current.msn}.{len(seg.current.parts)}.m4s"')
    lines.append("")
    return "\n".join(lines)


def _part_line(segment: Segment, index: int) -> str:
    part = segment.parts[index]
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.5f},URI="seg{segment.msn}.{index}.m4s"{independent}'


def mpd(seg: Segmenter, now: float, utc_url: str) -> str:
    """A dynamic MPD over the same CMAF segments, one AdaptationSet per track."""
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
    for track_index in seg.track_indexes:
        body.append(_adaptation_set(seg, track_index, segments, anchor_dts))
    body.append("</Period>")
    utc = f'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="{utc_url}"/>'
    return head + "\n".join(body) + f"\n{utc}\n</MPD>\n"


def _adaptation_set(seg: Segmenter, track_index: int, segments: list[Segment], anchor_dts: int) -> str:
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
        f' startNumber="{start_number}" initialization="dash-{rep_id}-init{seg.init_version}.mp4"'
        f' media="dash-{rep_id}-$Number$.m4s"><SegmentTimeline>{"".join(timeline)}</SegmentTimeline>'
        "</SegmentTemplate>"
    )
    return (
        f'<AdaptationSet id="{track_index}" contentType="{kind}" mimeType="{kind}/mp4" segmentAlignment="true"'
        f' startWithSAP="1"><Representation {attrs}>{template}</Representation></AdaptationSet>'
    )
