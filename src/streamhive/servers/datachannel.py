"""WebRTC data channels of one Peer: aiortc's SCTP association over our DTLS.

A data channel section (RFC 8841) puts SCTP inside the peer's DTLS: each DTLS application-data
record is one SCTP packet. aiortc's ``RTCSctpTransport`` implements the association and DCEP
(RFC 8832: the browser opens a channel with DATA_CHANNEL_OPEN, the transport acknowledges it and
emits "datachannel"). It expects an ``RTCDtlsTransport``, of which it uses only ``state``,
``_role``, ``_register_data_receiver``/``_unregister_data_receiver`` and ``async _send_data``:
:class:`_DtlsLink` provides those over our sans-IO ``Peer``, and :class:`DataChannels` feeds it
the peer's application data.

Bounds, because aiortc trusts its peer: it delivers messages of any size, keeps whatever DATA
chunks arrive whatever receive window it announced, lets its congestion window grow without
limit, queues whatever the application sends, and walks every TSN a SACK's gap blocks name (up
to 65535 each, hundreds per packet: seconds of CPU for one forged packet). Here:

- the association announces a receive window of :data:`RECEIVE_WINDOW` and is aborted, with a
  logged reason, when the peer overruns it (a flood, or a message larger than we announced sent
  anyway), holds more than :data:`MAX_HELD_CHUNKS` chunks (tiny chunks would cost far more
  memory than their bytes, and aiortc sorts its out-of-order set on each one), or uses more than
  :data:`MAX_STREAMS` streams; a received message larger than :data:`MAX_MESSAGE_SIZE` is dropped;
- SACK gap blocks are cut to the chunks we have outstanding and merged, and the congestion
  window is held to :data:`MAX_IN_FLIGHT`, so sent but unacknowledged data stays bounded;
- a send that would queue more than :data:`MAX_BUFFERED` unsent bytes on the association (a
  client that reads too slowly) closes the channel instead.

Cost (tests/interop/test_datachannel.py ``test_throughput``, aiortc in a child process on
loopback, 2 shared cores): 3,000-8,000 messages/s of 100 bytes and 2-6 MB/s of 16 KB messages,
either way, at 110-260 us of server CPU per small message and 1.5-2.9 ms per 16 KB one (14 SCTP
packets); aiortc's SCTP and pyOpenSSL's per-record calls share it about equally. aiortc walks its
whole sent queue on every transmission, so thousands of small messages in flight to one client
cost up to ~1 ms each: rooms should rate-limit what a participant sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcsctptransport import InboundStream, RTCSctpCapabilities, RTCSctpTransport, tsn_plus_one

from ..protocols.webrtc.sdp import MAX_MESSAGE_SIZE, SCTP_PORT

if TYPE_CHECKING:
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcsctptransport import DataChunk, SackChunk

    from .webrtc import Peer

log = logging.getLogger("streamhive.webrtc")

#: Unsent bytes the association's channels may queue (aiortc's ``bufferedAmount``, summed).
MAX_BUFFERED = 1024 * 1024
#: The receive window we announce: a largest message, and as much again in flight behind it.
RECEIVE_WINDOW = 2 * MAX_MESSAGE_SIZE
#: How far past the window a peer may go: zero-window probes, one packet at a time.
WINDOW_SLACK = 16 * 1024
#: DATA chunks held for reassembly or out of order; full-size chunks fill the window with ~450.
MAX_HELD_CHUNKS = 1024
#: Sent but unacknowledged bytes (the congestion window's ceiling).
MAX_IN_FLIGHT = RECEIVE_WINDOW
#: Inbound SCTP streams (each channel is one): we announce this many, and a peer using more is
#: aborted. A client's stream ids are all even or all odd (RFC 8832 6), so it opens 128 channels.
MAX_STREAMS = 256


class SctpOverload(Exception):
    """The peer broke a bound of the association; it is aborted."""


class _DtlsLink:
    """What RTCSctpTransport uses of an RTCDtlsTransport, over a Peer's DTLS.

    ``_send_data`` never suspends and never raises (a packet sent before DTLS connects or after
    the peer closed is dropped, as UDP would): this is what lets :func:`_run` drive aiortc's
    coroutines to their end in one call.
    """

    def __init__(self, peer: Peer) -> None:
        self._peer = peer

    @property
    def state(self) -> str:
        return "closed" if self._peer.closed else "connected"

    @property
    def _role(self) -> str:
        """The DTLS role decides the SCTP one and the parity of our stream ids (RFC 8832 6)."""
        return self._peer.dtls.role

    def _register_data_receiver(self, receiver: object) -> None:
        """DataChannels hands the association its packets itself."""

    def _unregister_data_receiver(self, receiver: object) -> None:
        """See _register_data_receiver."""

    async def _send_data(self, data: bytes) -> None:
        self._peer.send_app_data(data)


class _Association(RTCSctpTransport):
    """aiortc's SCTP transport with the receive side bounded (see the module docstring)."""

    def __init__(self, link: _DtlsLink, name: str) -> None:
        super().__init__(cast("RTCDtlsTransport", link), SCTP_PORT)
        self.name = name
        self.oversized = 0  # messages dropped for being larger than we announced
        self._advertised_rwnd = RECEIVE_WINDOW
        self._inbound_streams_max = MAX_STREAMS

    @property
    def held_chunks(self) -> int:
        """DATA chunks waiting for reassembly: at most MAX_STREAMS lists to count."""
        return sum(len(stream.reassembly) for stream in self._inbound_streams.values())

    def overload(self) -> str | None:
        """Why the peer must be cut off, or None; checked after each packet."""
        held_bytes = RECEIVE_WINDOW - self._advertised_rwnd
        if held_bytes > RECEIVE_WINDOW + WINDOW_SLACK:
            return (
                f"the peer overran our {RECEIVE_WINDOW}-byte receive window ({held_bytes} bytes held:"
                f" a flood, or a message over {MAX_MESSAGE_SIZE} bytes)"
            )
        if self.held_chunks > MAX_HELD_CHUNKS:
            return f"over {MAX_HELD_CHUNKS} DATA chunks held for reassembly"
        return None

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        """Refuse an out-of-order chunk past the bound before aiortc sorts its set with it (it
        does on every chunk, so the set's size is also the CPU a chunk costs)."""
        in_order = self._last_received_tsn is not None and chunk.tsn == tsn_plus_one(self._last_received_tsn)
        if len(self._sack_misordered) >= MAX_HELD_CHUNKS and not in_order:
            raise SctpOverload(f"over {MAX_HELD_CHUNKS} DATA chunks out of order")
        await super()._receive_data_chunk(chunk)

    async def _receive_sack_chunk(self, chunk: SackChunk) -> None:
        chunk.gaps = _gap_blocks(chunk.gaps, len(self._sent_queue))
        await super()._receive_sack_chunk(chunk)
        self._cwnd = min(self._cwnd, MAX_IN_FLIGHT)

    def _get_inbound_stream(self, stream_id: int) -> InboundStream:
        if stream_id >= MAX_STREAMS:
            raise SctpOverload(f"stream {stream_id} used, {MAX_STREAMS} announced")
        return super()._get_inbound_stream(stream_id)

    async def _data_channel_receive(self, stream_id: int, pp_id: int, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_SIZE:
            self.oversized += 1
            if self.oversized == 1 or self.oversized % 100 == 0:
                log.info(
                    "peer %s: dropped a %d-byte data channel message (over %d; %d so far)",
                    self.name,
                    len(data),
                    MAX_MESSAGE_SIZE,
                    self.oversized,
                )
            return
        await super()._data_channel_receive(stream_id, pp_id, data)


def _gap_blocks(gaps: list[tuple[int, int]], outstanding: int) -> list[tuple[int, int]]:
    """SACK gap blocks cut to the ``outstanding`` chunks they can acknowledge, sorted, merged.

    Offsets count from the SACK's cumulative TSN, which is at or past the first outstanding one,
    so an offset past ``outstanding`` names nothing we sent: dropping it changes no outcome.
    """
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(1, s), min(e, outstanding)) for s, e in gaps):
        if start > end:
            continue
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _run(step: Coroutine[Any, Any, None]) -> None:
    """Run one of the association's coroutines to its end, now.

    They await nothing but our ``_send_data``, which does not suspend, so each completes in one
    ``send``: calling it here keeps packets in arrival order and costs no Task per packet.
    """
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError(f"aiortc's {step.__qualname__} suspended; _DtlsLink assumes it never does")


class DataChannels:
    """The SCTP association of one Peer and its data channels.

    Made when the answer accepted a data channel section (``Answer.datachannel`` gives the
    client's ``remote_port`` and ``max_message_size``, the most we may send in one message, 0
    for any size). ``start()`` once the peer's DTLS is connected (its handler's ``connected``),
    ``close()`` when the peer closes (its handler's ``closed``): the association's retransmission
    timers run until then. Channels are the client's: it opens them, we answer; ``on_open`` gets
    each one's label and ``on_message`` each message as ``(label, str | bytes)``.
    """

    def __init__(
        self,
        peer: Peer,
        remote_port: int = SCTP_PORT,
        max_message_size: int = MAX_MESSAGE_SIZE,
        on_message: Callable[[str, str | bytes], None] | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.peer = peer
        self.remote_port = remote_port
        self.max_message_size = max_message_size
        self.on_message = on_message
        self.on_open = on_open
        self._unsendable = 0  # messages larger than the client takes
        self._sctp = _Association(_DtlsLink(peer), peer.id)
        self._sctp.on("datachannel", self._opened)
        self._channels: list[RTCDataChannel] = []
        self._started = False
        self._closed = False
        peer.on_app_data = self._receive

    @property
    def labels(self) -> list[str]:
        """The labels of the open channels, in the order they opened (labels need not be unique)."""
        return [channel.label for channel in self._channels if channel.readyState == "open"]

    @property
    def dropped(self) -> int:
        """Messages received too large to deliver, or too large to send."""
        return self._sctp.oversized + self._unsendable

    def start(self) -> None:
        """Open the association: both sides send INIT (RFC 8841 9.3), the DTLS role decides the rest."""
        if self._started or self._closed:
            return
        self._started = True
        caps = RTCSctpCapabilities(maxMessageSize=self.max_message_size)
        _run(self._sctp.start(caps, self.remote_port))

    def send(self, label: str, message: str | bytes) -> None:
        """Send to every open channel with this label; see the module docstring for the bounds."""
        size = len(message) if isinstance(message, bytes) else len(message.encode())
        if self.max_message_size and size > self.max_message_size:
            self._unsendable += 1
            log.info(
                "peer %s: not sending a %d-byte message on %r: the client takes %d at most",
                self.peer.id,
                size,
                label,
                self.max_message_size,
            )
            return
        queued = sum(channel.bufferedAmount for channel in self._channels)
        for channel in self._channels:
            if channel.label != label or channel.readyState != "open":
                continue
            if queued + size > MAX_BUFFERED:
                log.info(
                    "peer %s: closing data channel %r: %d bytes wait to be sent, the client reads too slowly",
                    self.peer.id,
                    label,
                    queued,
                )
                channel.close()
                continue
            channel.send(message)
            queued += size

    def buffered(self, label: str) -> int:
        """The most unsent bytes on an open channel with this label (a sender's backpressure)."""
        return max(
            (c.bufferedAmount for c in self._channels if c.label == label and c.readyState == "open"),
            default=0,
        )

    def close(self) -> None:
        """Abort the association (the client sees its channels close) and stop its timers."""
        if self._closed:
            return
        self._closed = True
        if self.peer.on_app_data == self._receive:
            self.peer.on_app_data = None
        _run(self._sctp.stop())
        self._channels.clear()

    def _receive(self, data: bytes) -> None:
        if not self._started or self._closed:
            return  # before start the association has no remote port to answer to; SCTP resends
        try:
            _run(self._sctp._handle_data(data))
        except SctpOverload as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # aiortc asserts, or fails to decode, on some hostile packets
            self._fail(f"bad SCTP packet: {exc!r}")
            return
        reason = self._sctp.overload()
        if reason is not None:
            self._fail(reason)
        elif self._sctp.state == "closed":  # the client aborted or shut the association down
            self._fail("the client closed the association")

    def _fail(self, reason: str) -> None:
        log.info("peer %s: data channels aborted: %s", self.peer.id, reason)
        self.close()

    def _opened(self, channel: RTCDataChannel) -> None:
        self._channels.append(channel)
        channel.on("message", lambda message: self._message(channel.label, message))
        channel.on("close", lambda: self._channels.remove(channel))
        if self.on_open is not None:
            self._call(self.on_open, channel.label)

    def _message(self, label: str, message: str | bytes) -> None:
        if self.on_message is not None:
            self._call(self.on_message, label, message)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        """Run an application callback; its failure is its own, not the association's (it runs
        inside aiortc's packet handling, which would otherwise take it for a bad packet)."""
        try:
            callback(*args)
        except Exception:
            log.exception("peer %s: data channel callback failed", self.peer.id)
