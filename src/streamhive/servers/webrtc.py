"""The WebRTC transport: every peer on one UDP socket and one TCP port (ICE-lite), DTLS, SRTP.

Like mediasoup's WebRtcServer and Pion's UDPMux, a datagram finds its peer by source address;
a datagram from a new address must be a STUN check whose USERNAME names a peer's ICE ufrag.
ICE-TCP (RFC 6544, passive) uses the same port number with RFC 4571 framing, for networks
that block UDP. The receive path drains the socket on each readiness event (``add_reader`` +
``recvfrom``) rather than going through asyncio's DatagramProtocol, which costs a callback and
a tuple per packet (bench/udp_recv.py has the numbers).

A Peer owns ICE, DTLS and SRTP for one PeerConnection; what it carries (a WHIP publisher, a
WHEP player) is its ``handler``, in servers/whip.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import secrets
import socket
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import ifaddr

from ..config import parse_listen
from ..formats.rtp.packet import is_rtcp
from ..hub import Session
from ..protocols.webrtc import WebRtcError
from ..protocols.webrtc.dtls import DtlsCertificate, DtlsEndpoint, DtlsError
from ..protocols.webrtc.framing import StreamDeframer, frame
from ..protocols.webrtc.ice import IceLite, new_credentials, stun_username
from ..protocols.webrtc.srtp import SrtpContext

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.webrtc")

#: Seconds between housekeeping passes (DTLS retransmissions, timeouts, RTCP reports).
TICK = 0.05
#: Datagrams read per readiness event before other callbacks get a turn.
DRAIN_BATCH = 512
SOCKET_BUFFER = 4 * 1024 * 1024
#: RTP SSRCs one peer may use (media, RTX and simulcast layers of a few tracks take a dozen).
MAX_SSRCS = 64


class Route(Protocol):
    """Where a peer's packets go: a UDP address on the shared socket, or an ICE-TCP connection."""

    addr: tuple[str, int]

    def send(self, data: bytes) -> None: ...

    def send_many(self, packets: list[bytes]) -> None: ...

    def buffered(self) -> int: ...


#: Linux UDP generic segmentation offload (UDP_SEGMENT, 4.18+): one sendmsg carries a frame's
#: equal-size packets and the kernel cuts them apart; a player then costs a syscall per frame
#: rather than per packet (bench/udp_recv.py: ~5 us per sendto against ~1.5 us per packet).
UDP_SEGMENT = 103
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000


class UdpRoute:
    __slots__ = ("addr", "_sock")

    #: Cleared for good when the kernel refuses UDP_SEGMENT (old kernel, no checksum offload).
    gso = hasattr(socket, "SOL_UDP")

    def __init__(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.addr = addr
        self._sock = sock

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, self.addr)
        except (BlockingIOError, InterruptedError):
            pass  # the kernel's buffer is full: UDP drops, NACK or the next keyframe repairs
        except OSError as exc:
            log.debug("sendto %s failed: %s", self.addr, exc)

    def send_many(self, packets: list[bytes]) -> None:
        """Send packets in order, each run of equal-size ones (the last may be shorter) in one
        sendmsg with UDP_SEGMENT when the kernel takes it."""
        count = len(packets)
        if count == 1 or not UdpRoute.gso:
            for packet in packets:
                self.send(packet)
            return
        i = 0
        while i < count:
            size = len(packets[i])
            j, total = i + 1, size
            while j < count and j - i < GSO_MAX_SEGMENTS:
                length = len(packets[j])
                if length > size or total + length > GSO_MAX_BYTES:
                    break
                total += length
                j += 1
                if length < size:
                    break  # only the last segment may be shorter
            if j - i == 1:
                self.send(packets[i])
            else:
                self._segmented(packets[i:j], size)
            i = j

    def _segmented(self, run: list[bytes], size: int) -> None:
        try:
            self._sock.sendmsg(
                run, [(socket.SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))], 0, self.addr
            )
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                UdpRoute.gso = False
                log.info("webrtc: UDP segmentation offload refused (%s); sending packets one by one", exc)
                for packet in run:
                    self.send(packet)
            else:
                log.debug("sendmsg %s failed: %s", self.addr, exc)

    def buffered(self) -> int:
        return 0


class Handler(Protocol):
    """What a peer carries: the WHIP publisher or WHEP player side (servers/whip.py)."""

    def connected(self) -> None: ...

    def rtp(self, packet: bytes, now: float) -> None: ...

    def rtcp(self, packet: bytes, now: float) -> None: ...

    def tick(self, now: float) -> None: ...

    def closed(self, reason: str) -> None: ...


class Peer:
    """One PeerConnection: ICE-lite checks, the DTLS handshake, then SRTP both ways."""

    def __init__(
        self,
        service: WebRtcService,
        session: Session,
        remote_ufrag: str,
        remote_fingerprint: str,
    ) -> None:
        self.service = service
        self.session = session
        self.id = session.id
        #: The WHIP/WHEP session resource (its URL's last part): unguessable, unlike session ids.
        self.resource = secrets.token_urlsafe(18)
        self.ufrag, pwd = new_credentials()
        self.pwd = pwd
        self.ice = IceLite(self.ufrag, pwd, remote_ufrag)
        self.remote_fingerprint = remote_fingerprint
        self.dtls = DtlsEndpoint(service.cert, "server", remote_fingerprint)
        self.srtp: SrtpContext | None = None
        self.route: Route | None = None
        #: The UDP addresses the service routes to this peer: its valid ones (ICE keeps 32 at most).
        self.udp_addrs: set[tuple[str, int]] = set()
        self.handler: Handler | None = None
        #: Where DTLS application data (SCTP, for data channels) goes; None drops it.
        self.on_app_data: Callable[[bytes], None] | None = None
        self.created = service.now()
        self.secure_at: float | None = None
        self.closed = False
        self.close_reason = ""
        self.bad_packets = 0
        #: The RTP SSRCs this peer sent: each costs a libsrtp stream, found by a linear scan.
        self.ssrcs: set[bytes] = set()
        #: Protected packets waiting for the end of this loop turn (``queue_rtp``).
        self.outbox: list[bytes] = []

    def start_dtls(self, role: str) -> None:
        """Take the DTLS role the answer gave us: "server" (setup:passive), else we connect."""
        if role != "server":
            self.dtls = DtlsEndpoint(self.service.cert, "client", self.remote_fingerprint)

    # -- receive ----------------------------------------------------------------------------------
    def receive(self, data: bytes, route: Route, now: float) -> None:
        first = data[0]
        if first > 127:
            if first < 192 and self.srtp is not None:
                self._media(data, now)
            return
        if first < 4:
            self._stun(data, route, now)
        elif 19 < first < 64:
            self._dtls(data, route, now)

    def _stun(self, data: bytes, route: Route, now: float) -> None:
        result = self.ice.handle(data, route.addr, now)
        if result.response:
            route.send(result.response)
        if result.valid:
            self.service.learn(self, route)
        if result.selected and self.route is not route:
            if self.route is not None:
                log.info("peer %s: ICE selected %s (was %s)", self.id, route.addr, self.route.addr)
            self.route = route
            if self.dtls.role == "client" and not self.dtls.connected and self.dtls.next_timeout() is None:
                for datagram in self.dtls.start(now):
                    route.send(datagram)

    def _dtls(self, data: bytes, route: Route, now: float) -> None:
        if not self.ice.is_valid(route.addr):
            return  # DTLS only where a STUN check proved the peer knows our password
        if self.route is None:
            self.route = route  # DTLS before USE-CANDIDATE: answer where it came from
        try:
            out = self.dtls.receive(data, now)
        except DtlsError as exc:
            for datagram in exc.datagrams:  # the alert, so the browser fails now, not on a timeout
                route.send(datagram)
            self.service.counters["dtls_failed"] += 1
            self.close(f"DTLS failed: {exc}")
            return
        for datagram in out:
            route.send(datagram)
        if self.dtls.app_data and self.on_app_data is not None:
            for data in self.dtls.app_data:
                self.on_app_data(data)
        if self.dtls.connected and self.srtp is None:
            self.srtp = SrtpContext(self.dtls.srtp_keys)
            self.secure_at = now
            log.info(
                "peer %s: connected over %s %s in %.0f ms",
                self.id,
                "TCP" if isinstance(route, TcpRoute) else "UDP",
                route.addr,
                (now - self.created) * 1000,
            )
            if self.handler is not None:
                self.handler.connected()
        elif self.dtls.closed_by_peer:
            self.close("peer closed DTLS")

    def _media(self, data: bytes, now: float) -> None:
        srtp = self.srtp
        assert srtp is not None
        handler = self.handler
        try:
            if is_rtcp(data):
                plain = srtp.unprotect_rtcp(data)
                if handler is not None:
                    handler.rtcp(plain, now)
            else:
                ssrc = data[8:12]
                if ssrc not in self.ssrcs:
                    if len(self.ssrcs) >= MAX_SSRCS:  # libsrtp would keep a stream for each
                        self.service.counters["ssrc_limit"] += 1
                        return
                    self.ssrcs.add(ssrc)
                plain = srtp.unprotect(data)
                self.session.bytes_in += len(data)
                if handler is not None:
                    handler.rtp(plain, now)
        except WebRtcError as exc:
            self.service.counters["srtp_rejected"] += 1
            self.bad_packets += 1
            if self.bad_packets == 1 or self.bad_packets % 1000 == 0:
                log.info("peer %s: dropped SRTP packet (%d so far): %s", self.id, self.bad_packets, exc)
        except ValueError as exc:  # a packet the handler's parsers refuse (RtpError)
            self.service.counters["bad_rtp"] += 1
            self.bad_packets += 1
            if self.bad_packets == 1 or self.bad_packets % 1000 == 0:
                log.info("peer %s: dropped RTP/RTCP packet (%d so far): %s", self.id, self.bad_packets, exc)

    # -- send -------------------------------------------------------------------------------------
    def send_rtp(self, packet: bytes) -> None:
        """Protect and send one packet; one the SRTP context refuses (a sequence number further
        behind the newest than its replay window, such as a retransmission that came very late) is
        dropped and counted: the caller may be fanning out to other peers."""
        route, srtp = self.route, self.srtp
        if route is None or srtp is None:
            return
        try:
            data = srtp.protect(packet)
        except WebRtcError:
            self.service.counters["srtp_protect_refused"] += 1
            return
        self.session.bytes_out += len(data)
        route.send(data)

    def queue_rtp(self, packet: bytes) -> None:
        """Protect a packet now and send it at the end of this event-loop turn, with whatever else
        this peer gets meanwhile: a room subscriber is sent a publisher's burst of packets (a
        drain of the socket) in one ``sendmsg`` with UDP_SEGMENT rather than one per packet."""
        if self.route is None or self.srtp is None:
            return
        try:
            data = self.srtp.protect(packet)
        except WebRtcError:
            self.service.counters["srtp_protect_refused"] += 1
            return
        if not self.outbox:
            self.service.flush_later(self)
        self.outbox.append(data)

    def flush(self) -> None:
        packets, self.outbox = self.outbox, []
        route = self.route
        if packets and route is not None and not self.closed:
            self.session.bytes_out += sum(map(len, packets))
            route.send_many(packets)

    def send_app_data(self, data: bytes) -> None:
        """Send DTLS application data (an SCTP packet); dropped before DTLS connects."""
        route = self.route
        if route is None or not self.dtls.connected or self.closed:
            return
        try:
            for datagram in self.dtls.send(data, self.service.now()):
                route.send(datagram)
        except WebRtcError as exc:
            self.close(f"DTLS failed: {exc}")

    def send_rtcp(self, packet: bytes) -> None:
        route, srtp = self.route, self.srtp
        if route is not None and srtp is not None:
            route.send(srtp.protect_rtcp(packet))

    # -- timers and end ---------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self.srtp is None:
            timeout = self.service.config.handshake_timeout
            if now - self.created > timeout:
                what = "DTLS" if self.route is not None else "ICE"
                self.service.counters[f"{what.lower()}_timeout"] += 1
                self.close(f"{what} did not complete within {timeout:g}s")
                return
            deadline = self.dtls.next_timeout()
            if deadline is not None and now >= deadline and self.route is not None:
                try:
                    for datagram in self.dtls.handle_timer(now):
                        self.route.send(datagram)
                except WebRtcError as exc:
                    self.close(f"DTLS failed: {exc}")
            return
        if self.ice.consent_expired(now, self.service.config.consent_timeout):
            self.service.counters["consent_expired"] += 1
            self.close("ICE consent expired: the peer stopped answering")
            return
        if self.handler is not None:
            self.handler.tick(now)

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.session.close_reason = self.session.close_reason or reason
        if self.route is not None and self.dtls.connected:
            with contextlib.suppress(WebRtcError):
                for datagram in self.dtls.close():
                    self.route.send(datagram)
        self.service.forget(self)
        if self.handler is not None:
            self.handler.closed(reason)


class TcpRoute(asyncio.Protocol):
    """One ICE-TCP connection (RFC 4571 framing); its first packet must be a STUN check."""

    def __init__(self, service: WebRtcService) -> None:
        self.service = service
        self.deframer = StreamDeframer()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.addr: tuple[str, int] = ("", 0)
        self.opened = service.now()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1]) if peer else ("", 0)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.service.tcp_connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.deframer.feed(data)
        except WebRtcError as exc:
            self._drop(f"bad ICE-TCP framing: {exc}")
            return
        now = self.service.now()
        for packet in packets:
            if not packet:
                continue
            peer = self.peer  # set by WebRtcService.learn once a check from here is valid
            if peer is None:
                peer = self.service.peer_for_stun(packet)
                if peer is None:
                    self._drop("ICE-TCP connection without a known ICE username")
                    return
                if packet[0] > 3:
                    continue  # nothing but STUN before a valid check
            peer.receive(packet, self, now)

    def _drop(self, reason: str) -> None:
        log.info("ICE-TCP %s: %s", self.addr, reason)
        if self.transport is not None:
            self.transport.abort()

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame(data))

    def send_many(self, packets: list[bytes]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(map(frame, packets)))

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.tcp_connections.discard(self)
        peer = self.peer
        if peer is not None and peer.route is self:
            peer.close("ICE-TCP connection closed")


class WebRtcService:
    """The shared socket, the peer tables, and the housekeeping timer."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config.webrtc
        self._cert: DtlsCertificate | None = None
        self.peers: dict[str, Peer] = {}
        self.resources: dict[str, Peer] = {}
        self._by_ufrag: dict[str, Peer] = {}
        self._by_addr: dict[tuple[str, int], tuple[Peer, UdpRoute]] = {}
        self.tcp_connections: set[TcpRoute] = set()
        self.sock: socket.socket | None = None
        self.port = 0
        self.candidate_hosts: list[str] = []
        #: Events for /metrics: rejected datagrams, handshake failures, NACKs, retransmissions...
        self.counters: Counter[str] = Counter()
        self._tcp: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_sweep = 0.0
        self._dirty: list[Peer] = []  # peers with queued packets, flushed once per loop turn

    @property
    def cert(self) -> DtlsCertificate:
        if self._cert is None:  # made on first use: a server without WebRTC peers never pays
            self._cert = DtlsCertificate.generate()
        return self._cert

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def start(self) -> list[asyncio.AbstractServer]:
        loop = self._loop = asyncio.get_running_loop()
        host, port = parse_listen(self.config.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
        self.sock = sock
        self.port = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._drain)
        servers: list[asyncio.AbstractServer] = []
        if self.config.tcp:
            self._tcp = await loop.create_server(lambda: TcpRoute(self), host, self.port, reuse_address=True)
            servers.append(self._tcp)
        self.candidate_hosts = await self._candidate_hosts(host)
        self._ticker = asyncio.ensure_future(self._tick())
        log.info(
            "webrtc: ICE on %s:%d (UDP%s), candidates %s",
            host,
            self.port,
            " and TCP" if self.config.tcp else "",
            ", ".join(self.candidate_hosts),
        )
        return servers

    def stop(self) -> None:
        for peer in list(self.peers.values()):
            peer.close("server shutting down")
        if self._ticker is not None:
            self._ticker.cancel()
        if self.sock is not None and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for conn in list(self.tcp_connections):
            if conn.transport is not None:
                conn.transport.abort()

    async def _candidate_hosts(self, host: str) -> list[str]:
        """Addresses put in our ICE candidates: configured, else the listen host or every interface."""
        hosts = [ip for name in self.config.public_ips for ip in await self._resolve(name)]
        if self.config.stun_server is not None:
            public = await self._stun_public_address()
            if public is not None and public not in hosts:
                hosts.append(public)
        if hosts:
            return hosts
        if host not in ("0.0.0.0", "::"):
            return [host]
        found: list[str] = []
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str) and host == "0.0.0.0":
                    found.append(ip.ip)
                elif isinstance(ip.ip, tuple) and host == "::":
                    address = ipaddress.IPv6Address(ip.ip[0])
                    if not address.is_link_local:
                        found.append(str(address))
        # Loopback last: it only helps a browser on this machine, and costs others one failed pair.
        found.sort(key=lambda a: ipaddress.ip_address(a).is_loopback)
        return found

    async def _resolve(self, name: str) -> list[str]:
        """A configured public address as IPs: browsers do not resolve host names in candidates."""
        try:
            ipaddress.ip_address(name)
            return [name]
        except ValueError:
            pass
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("webrtc: public address %s does not resolve (%s); left out", name, exc)
            return []
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        log.info("webrtc: public address %s is %s", name, ", ".join(found))
        return found

    async def _stun_public_address(self) -> str | None:
        from aioice import stun

        assert self.config.stun_server is not None and self._loop is not None and self.sock is not None
        host, port = parse_listen(self.config.stun_server)
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.setblocking(False)
        try:
            for _ in range(3):
                probe.sendto(bytes(request), (host, port))
                with contextlib.suppress(TimeoutError, OSError, ValueError):
                    data = await asyncio.wait_for(self._loop.sock_recv(probe, 2048), 1.0)
                    address = stun.parse_message(data).attributes.get("XOR-MAPPED-ADDRESS")
                    if address:
                        log.info(
                            "webrtc: public address %s (from STUN %s)", address[0], self.config.stun_server
                        )
                        return str(address[0])
        except OSError as exc:
            log.warning("webrtc: STUN server %s unusable: %s", self.config.stun_server, exc)
        finally:
            probe.close()
        log.warning("webrtc: no answer from STUN server %s", self.config.stun_server)
        return None

    def candidates(self) -> list[tuple[str, int, str]]:
        udp = [(h, self.port, "udp") for h in self.candidate_hosts]
        tcp = [(h, self.port, "tcp") for h in self.candidate_hosts] if self.config.tcp else []
        return udp + tcp

    # -- peers ------------------------------------------------------------------------------------
    def add(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        self.resources[peer.resource] = peer
        self._by_ufrag[peer.ufrag] = peer

    def forget(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        self.resources.pop(peer.resource, None)
        if self._by_ufrag.get(peer.ufrag) is peer:
            del self._by_ufrag[peer.ufrag]
        for addr in peer.udp_addrs:
            if self._by_addr.get(addr, (None,))[0] is peer:
                del self._by_addr[addr]
        peer.udp_addrs.clear()
        route = peer.route
        if isinstance(route, TcpRoute) and route.transport is not None:
            route.transport.close()

    def learn(self, peer: Peer, route: Route) -> None:
        """A valid STUN check came from ``route``: its datagrams belong to ``peer`` from now on."""
        if isinstance(route, UdpRoute):
            owner = self._by_addr.get(route.addr)
            if owner is None or owner[0] is not peer:
                self._by_addr[route.addr] = (peer, route)
                peer.udp_addrs.add(route.addr)
                # A peer checking from ever new ports must not grow the map: keep what ICE keeps.
                for gone in peer.udp_addrs - peer.ice.valid_addresses:
                    if self._by_addr.get(gone, (None,))[0] is peer:
                        del self._by_addr[gone]
                    peer.udp_addrs.discard(gone)
        elif isinstance(route, TcpRoute):
            route.peer = peer

    def peer_for_stun(self, data: bytes) -> Peer | None:
        ufrag = stun_username(data)
        return self._by_ufrag.get(ufrag) if ufrag is not None else None

    def flush_later(self, peer: Peer) -> None:
        if not self._dirty:
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        self._dirty.append(peer)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for peer in dirty:
            peer.flush()

    def _drain(self) -> None:
        sock = self.sock
        if sock is None:
            return
        recvfrom = sock.recvfrom
        by_addr = self._by_addr
        now = self.now()
        for _ in range(DRAIN_BATCH):
            try:
                data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error queued on the socket: nothing to read this time
                log.debug("webrtc recvfrom: %s", exc)
                continue
            if not data:
                continue
            if len(addr) > 2:
                addr = addr[:2]
            owner = by_addr.get(addr)
            if owner is not None:
                try:
                    owner[0].receive(data, owner[1], now)
                except Exception:  # one peer's bug must not stop the drain for every other peer
                    self.counters["handler_errors"] += 1
                    log.exception("peer %s: packet handling failed", owner[0].id)
                    owner[0].close("internal error")
                continue
            peer = self.peer_for_stun(data) if data[0] < 4 else None
            if peer is None:
                self.counters["unknown_datagrams"] += 1
                continue
            peer.receive(data, UdpRoute(sock, addr), now)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = self.now()
            for peer in list(self.peers.values()):
                try:
                    peer.tick(now)
                except Exception:
                    log.exception("peer %s: housekeeping failed", peer.id)
                    peer.close("internal error")
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                self._sweep_tcp(now)

    def _sweep_tcp(self, now: float) -> None:
        """Close ICE-TCP connections that hold a socket for nothing: no valid check within the
        handshake timeout, or their peer is gone (one it never selected is not closed with it)."""
        timeout = self.config.handshake_timeout
        for conn in list(self.tcp_connections):
            peer = conn.peer
            idle = peer is None and now - conn.opened > timeout
            if (idle or (peer is not None and peer.closed)) and conn.transport is not None:
                self.counters["ice_tcp_timeout" if idle else "ice_tcp_orphaned"] += 1
                conn.transport.abort()
