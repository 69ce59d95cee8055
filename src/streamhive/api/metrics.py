"""Prometheus metrics, read from the hub at scrape time: nothing is counted twice on hot paths."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from ..server import Server


class HubCollector:
    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        hub = self.server.hub
        stats = hub.stats
        streams = GaugeMetricFamily("streamhive_streams", "Live streams (paths with a publisher or in grace)")
        streams.add_metric([], len(hub.streams))
        yield streams
        sessions = GaugeMetricFamily("streamhive_sessions", "Connected sessions", labels=["protocol", "role"])
        for (protocol, role), count in sorted(
            Counter((s.protocol, s.role) for s in hub.sessions.values()).items()
        ):
            sessions.add_metric([protocol, role], count)
        yield sessions
        live_in = sum(s.bytes_in for s in hub.sessions.values())
        live_out = sum(s.bytes_out for s in hub.sessions.values())
        received = CounterMetricFamily("streamhive_bytes_received", "Bytes received from clients")
        received.add_metric([], stats.bytes_in_closed + live_in)
        yield received
        sent = CounterMetricFamily("streamhive_bytes_sent", "Bytes sent to clients")
        sent.add_metric([], stats.bytes_out_closed + live_out)
        yield sent
        for name, doc, value in (
            (
                "streamhive_dropped_frames",
                "Frames not sent to readers that fell behind",
                stats.dropped_frames,
            ),
            (
                "streamhive_slow_readers_disconnected",
                "Readers disconnected for staying behind",
                stats.slow_readers_disconnected,
            ),
            ("streamhive_sessions_accepted", "Sessions accepted since start", stats.sessions_total),
            (
                "streamhive_refused_connections",
                "Connections refused at max_connections or max_connections_per_ip",
                stats.refused_connections,
            ),
        ):
            metric = CounterMetricFamily(name, doc)
            metric.add_metric([], value)
            yield metric
        refused = CounterMetricFamily(
            "streamhive_refused_requests",
            "Publish, read and API requests refused, by reason (unauthorized, forbidden, rate_limited, bitrate...)",
            labels=["reason"],
        )
        for reason, count in sorted(stats.refused_requests.items()):
            refused.add_metric([reason], count)
        yield refused
        hooks = self.server.hooks
        for name, value in (
            ("delivered", hooks.delivered),
            ("failed", hooks.failed),
            ("dropped", hooks.dropped),
        ):
            metric = CounterMetricFamily(f"streamhive_hook_events_{name}", f"Event hook deliveries {name}")
            metric.add_metric([], value)
            yield metric
        readers = GaugeMetricFamily("streamhive_readers", "Readers per path", labels=["path"])
        for path, stream in sorted(hub.streams.items()):
            readers.add_metric([path], stream.reader_count())
        yield readers
        viewers = GaugeMetricFamily(
            "streamhive_hls_viewers", "HLS/DASH viewers seen in the last 30 s", labels=["path"]
        )
        for path in sorted(self.server.hls.muxings):
            viewers.add_metric([path], self.server.hls.viewers(path))
        yield viewers
        webrtc = self.server.webrtc
        peers = GaugeMetricFamily("streamhive_webrtc_peers", "WebRTC peer connections (WHIP and WHEP)")
        peers.add_metric([], len(webrtc.peers))
        yield peers
        events = CounterMetricFamily(
            "streamhive_webrtc_events",
            "WebRTC transport events: NACKed and retransmitted packets, keyframe requests, rejected "
            "datagrams, SRTP failures, handshake timeouts",
            labels=["event"],
        )
        for event, count in sorted(webrtc.counters.items()):
            events.add_metric([event], count)
        yield events
        rooms = self.server.rooms.rooms
        gauge = GaugeMetricFamily("streamhive_rooms", "Rooms open")
        gauge.add_metric([], len(rooms))
        yield gauge
        people = GaugeMetricFamily("streamhive_room_participants", "Participants per room", labels=["room"])
        forwarded = GaugeMetricFamily(
            "streamhive_room_subscriptions", "Tracks forwarded to subscribers per room", labels=["room"]
        )
        for name, room in sorted(rooms.items()):
            people.add_metric([name], len(room.participants))
            forwarded.add_metric([name], sum(len(p.subscriptions) for p in room.participants.values()))
        yield people
        yield forwarded


def make_registry(server: Server) -> CollectorRegistry:
    """One registry per Server, so several servers in one process (tests, embedding) never clash."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(server))  # type: ignore[arg-type]
    return registry


def render_metrics(server: Server) -> tuple[bytes, str]:
    return generate_latest(server.metrics_registry), CONTENT_TYPE_LATEST
