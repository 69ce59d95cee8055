"""The YAML configuration: a typed model with defaults, so that no file is needed.

Unknown keys and bad values are errors that name the key, the file and the line, and the server
does not start; a silent typo in a media server config is a stream that never shows up.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the line."""


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``":PORT"`` means every interface; IPv6 as ``"[::1]:PORT"``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be 'HOST:PORT', got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class TlsConfig(_Model):
    cert: str | None = Field(None, description="PEM certificate chain file.")
    key: str | None = Field(None, description="PEM private key file.")
    self_signed: bool = Field(
        False,
        description="Generate a self-signed certificate at startup (development and tests) instead of cert/key.",
    )

    @model_validator(mode="after")
    def _complete(self) -> TlsConfig:
        if not self.self_signed and (self.cert is None or self.key is None):
            raise ValueError("tls needs cert and key, or self_signed: true")
        return self


class RtmpsConfig(_Model):
    listen: str = Field(":1936", description="Address of the RTMPS (RTMP over TLS) listener.")
    cert: str | None = Field(None, description="PEM certificate chain file (default: the top-level tls).")
    key: str | None = Field(None, description="PEM private key file (default: the top-level tls).")

    _listen = field_validator("listen")(_check_listen)


class RtmpConfig(_Model):
    enabled: bool = Field(True, description="Serve RTMP publishers and players.")
    listen: str = Field(":1935", description="RTMP listen address, HOST:PORT.")
    chunk_size: int = Field(
        4096,
        ge=128,
        le=65536,
        description="Chunk size the server sends with (one encoding shared by all players).",
    )
    max_message_size: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest RTMP message accepted; larger closes the session."
    )
    max_chunk_size: int = Field(
        1024 * 1024, ge=128, description="Largest chunk size a peer may announce with Set Chunk Size."
    )
    handshake_timeout: float = Field(10.0, gt=0, description="Seconds a client has to finish the handshake.")
    rtmps: RtmpsConfig | None = Field(None, description="Optional RTMPS listener (TLS); off when absent.")

    _listen = field_validator("listen")(_check_listen)


class HttpsConfig(_Model):
    listen: str = Field(
        ":8443", description="Address of the HTTPS (and WSS) listener: the same routes as HTTP."
    )
    cert: str | None = Field(None, description="PEM certificate chain file (default: the top-level tls).")
    key: str | None = Field(None, description="PEM private key file (default: the top-level tls).")

    _listen = field_validator("listen")(_check_listen)


class HttpConfig(_Model):
    enabled: bool = Field(True, description="Serve HTTP-FLV, WS-FLV, the API and metrics.")
    listen: str = Field(":8080", description="HTTP listen address, HOST:PORT.")
    https: HttpsConfig | None = Field(None, description="Optional HTTPS listener; off when absent.")
    api_rate_limit: float = Field(
        20.0, ge=0, description="API requests per second per client address (burst of 5x); 0 means no limit."
    )
    cors_origin: str = Field("*", description="Access-Control-Allow-Origin sent with media responses.")
    max_blocked_requests: int = Field(
        10000, ge=1, description="LL-HLS blocking playlist/part requests waiting at once, all paths together."
    )

    _listen = field_validator("listen")(_check_listen)


class RtspsConfig(_Model):
    listen: str = Field(":8322", description="Address of the RTSPS (RTSP over TLS, TCP transport) listener.")
    cert: str | None = Field(None, description="PEM certificate chain file (default: the top-level tls).")
    key: str | None = Field(None, description="PEM private key file (default: the top-level tls).")

    _listen = field_validator("listen")(_check_listen)


class RtspConfig(_Model):
    enabled: bool = Field(True, description="Serve RTSP publishers (ANNOUNCE/RECORD) and players.")
    listen: str = Field(":8554", description="RTSP listen address, HOST:PORT (TCP).")
    udp: bool = Field(
        True, description="Offer RTP over UDP (on rtp_port/rtcp_port) besides TCP-interleaved RTP."
    )
    rtp_port: int = Field(8000, ge=0, le=65535, description="UDP port for RTP of every RTSP session.")
    rtcp_port: int = Field(8001, ge=0, le=65535, description="UDP port for RTCP of every RTSP session.")
    session_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a UDP session, or a publisher on any transport, lives without requests, RTP or RTCP.",
    )
    request_timeout: float = Field(
        10.0, gt=0, description="Seconds a new connection has to send its first request."
    )
    max_request_bytes: int = Field(
        16384, ge=1024, description="Largest request head (request line and headers) accepted."
    )
    mtu: int = Field(1400, ge=576, le=9000, description="Largest RTP packet sent to readers.")
    realm: str = Field("streamhive", description="Realm of Basic/Digest challenges.")
    auth_methods: list[Literal["digest", "basic"]] = Field(
        ["digest", "basic"],
        min_length=1,
        description="Challenges offered on 401; Digest cannot check users that have only a password_hash.",
    )
    rtsps: RtspsConfig | None = Field(None, description="Optional RTSPS listener (TLS); off when absent.")

    _listen = field_validator("listen")(_check_listen)


class IceServerConfig(_Model):
    """A STUN/TURN server offered to WHIP/WHEP clients in ``Link`` headers (RFC 9725 section 4.6)."""

    urls: list[str] = Field(min_length=1, description="`stun:` / `turn:` / `turns:` URLs of one server.")
    username: str | None = Field(None, description="TURN user name.")
    credential: str | None = Field(None, description="TURN password.")


class WebRtcConfig(_Model):
    enabled: bool = Field(True, description="Serve WHIP publishers and WHEP players.")
    listen: str = Field(
        ":8189",
        description="ICE address, HOST:PORT: one UDP socket for every peer, and ICE-TCP on the same port.",
    )
    tcp: bool = Field(True, description="Accept ICE-TCP (RFC 6544 passive candidates) on the listen port.")
    public_ips: list[str] = Field(
        [],
        description="Addresses or host names announced as candidates; empty: the listen host, or every interface address when it listens on all.",
    )
    stun_server: str | None = Field(
        None,
        description="HOST:PORT of a STUN server asked once at startup for our public address (added to the candidates).",
    )
    ice_servers: list[IceServerConfig] = Field(
        [], description="STUN/TURN servers told to clients (Link headers of WHIP/WHEP answers)."
    )
    handshake_timeout: float = Field(
        10.0, gt=0, description="Seconds a new peer has to complete ICE and DTLS before it is dropped."
    )
    consent_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds without a STUN consent check after which a peer is dropped (RFC 7675).",
    )
    nack_history: int = Field(
        512, ge=16, le=8192, description="RTP packets kept per outgoing track to answer NACKs."
    )
    max_offer_bytes: int = Field(65536, ge=1024, description="Largest SDP offer accepted.")
    publish_bitrate: int = Field(
        4_000_000, ge=100_000, description="Bitrate (bit/s) WHIP publishers are invited to send (REMB)."
    )
    audio_transcode: bool = Field(
        True,
        description="Transcode AAC to Opus for WebRTC players, and Opus to AAC for RTMP/FLV/HLS players, while such players exist.",
    )
    mtu: int = Field(1200, ge=576, le=1500, description="Largest RTP packet sent to WebRTC players.")

    _listen = field_validator("listen")(_check_listen)

    @field_validator("stun_server")
    @classmethod
    def _stun(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value


class ReservedListener(_Model):
    """Listeners of protocols that later releases serve; the key is accepted so configs stay stable."""

    listen: str = Field(description="Listen address, HOST:PORT (not served yet by this release).")

    _listen = field_validator("listen")(_check_listen)


def _check_networks(value: list[str]) -> list[str]:
    from .auth.networks import parse_networks  # here: auth imports this module's models

    parse_networks(value)  # a ValueError names the bad entry
    return value


#: How a request may prove it is allowed; a path lists the ones it accepts (any one suffices).
AuthMethod = Literal["open", "users", "jwt", "signed_url", "http"]
Action = Literal["publish", "read", "api"]


class UserConfig(_Model):
    user: str = Field(min_length=1, description="User name.")
    password: str | None = Field(
        None, description="Password in clear (needed for RTSP Digest, where the password never travels)."
    )
    password_hash: str | None = Field(
        None, description="Password hash made by `streamhive hash-password` (scrypt); instead of password."
    )
    actions: list[Action] = Field(["read"], description="What the user may do: publish, read, api.")
    paths: list[str] = Field(
        ["**"], description="Path globs (`live/*` one segment, `cams/**` any depth) or `~regex` (full match)."
    )
    ips: list[str] = Field([], description="Client networks (CIDR) the user may come from; empty: anywhere.")

    _ips = field_validator("ips")(lambda value: _check_networks(value))

    @model_validator(mode="after")
    def _one_password(self) -> UserConfig:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError(f"user {self.user!r} needs exactly one of password and password_hash")
        return self


class JwtConfig(_Model):
    secret: str | None = Field(
        None,
        min_length=32,
        description="Shared secret for HS256/HS384/HS512 tokens (32 bytes or more, RFC 7518).",
    )
    public_key: str | None = Field(None, description="PEM public key file for RS256/ES256 tokens.")
    jwks_url: str | None = Field(
        None, description="URL of a JWKS document with the signing keys (fetched, cached)."
    )
    algorithms: list[str] = Field(
        [],
        description="Accepted algorithms; default HS256 with a secret, RS256 and ES256 with keys. Never none.",
    )
    audience: str | None = Field(None, description="Required `aud` claim, if set.")
    issuer: str | None = Field(None, description="Required `iss` claim, if set.")
    leeway: float = Field(5.0, ge=0, le=300, description="Seconds of clock skew allowed on exp/nbf.")
    jwks_refresh: float = Field(300.0, gt=0, description="Seconds between JWKS refreshes.")

    @model_validator(mode="after")
    def _one_key(self) -> JwtConfig:
        if sum(x is not None for x in (self.secret, self.public_key, self.jwks_url)) != 1:
            raise ValueError("jwt needs exactly one of secret, public_key and jwks_url")
        if any(a.lower() == "none" for a in self.algorithms):
            raise ValueError("jwt algorithm 'none' is never accepted")
        return self


class SignedUrlConfig(_Model):
    secret: str = Field(min_length=16, description="HMAC-SHA256 secret for `?expires=...&sign=...` URLs.")
    max_validity: float = Field(
        7 * 86400, gt=0, description="Refuse signatures whose expiry is further away than this (seconds)."
    )


class HttpAuthConfig(_Model):
    url: str = Field(description="POST JSON {action, path, protocol, ...} here; any 2xx allows.")
    timeout: float = Field(3.0, gt=0, le=60, description="Seconds to wait for an answer; a timeout refuses.")
    cache: float = Field(10.0, ge=0, description="Seconds an answer is reused for the same request fields.")


class HooksConfig(_Model):
    on_publish: str | None = Field(None, description="URL POSTed when a path starts being published.")
    on_unpublish: str | None = Field(None, description="URL POSTed when a publisher leaves.")
    on_read: str | None = Field(None, description="URL POSTed when a reader starts.")
    on_read_end: str | None = Field(None, description="URL POSTed when a reader ends.")
    timeout: float = Field(5.0, gt=0, description="Seconds per delivery attempt.")
    retries: int = Field(3, ge=0, le=10, description="Extra attempts after a failed delivery (with backoff).")
    queue_size: int = Field(
        1000, ge=1, description="Undelivered events kept; beyond it the oldest are dropped."
    )


class AuthConfig(_Model):
    users: list[UserConfig] = Field([], description="Internal users (method `users`).")
    jwt: JwtConfig | None = Field(None, description="JSON Web Tokens (method `jwt`).")
    signed_urls: SignedUrlConfig | None = Field(None, description="HMAC-signed URLs (method `signed_url`).")
    http: HttpAuthConfig | None = Field(None, description="An HTTP service that decides (method `http`).")
    hooks: HooksConfig = Field(default_factory=HooksConfig)  # type: ignore[arg-type]
    api: list[AuthMethod] = Field(
        [],
        description="Methods for the API and metrics; empty: only clients on this machine (loopback) may use them.",
    )
    ip_allow: list[str] = Field([], description="If set, only these networks (CIDR) may connect to anything.")
    ip_deny: list[str] = Field([], description="Networks (CIDR) refused everything.")

    _networks = field_validator("ip_allow", "ip_deny")(lambda value: _check_networks(value))
    max_failures: int = Field(
        10,
        ge=1,
        description="Failed authentications per client address within a minute before it is blocked.",
    )
    block_seconds: float = Field(60.0, gt=0, description="How long a blocked address is refused.")


class RoomsConfig(_Model):
    """Multi-party WebRTC rooms (the SFU): signaling at ``/rooms/{room}/ws``, media on ``webrtc.listen``."""

    enabled: bool = Field(True, description="Serve rooms (needs webrtc.enabled).")
    auth: Literal["open", "jwt"] = Field(
        "open",
        description="open: anyone may join any room (a token, if sent, still applies its grants); jwt: a room token is required.",
    )
    jwt: JwtConfig | None = Field(
        None,
        description="Keys for room tokens (HS256 secret or RS256/ES256 public key); required by auth jwt.",
    )
    max_rooms: int = Field(1000, ge=1, description="Most rooms at once.")
    max_participants: int = Field(50, ge=1, description="Most participants in one room.")
    max_publishers: int = Field(50, ge=1, description="Most participants publishing media in one room.")
    max_tracks: int = Field(8, ge=1, le=32, description="Most tracks one participant may publish.")
    last_n: int = Field(
        0,
        ge=0,
        description="Forward video of only the N most recent speakers to each subscriber; 0: everyone.",
    )
    join_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a new WebSocket has to send its join (and a peer to connect) before it is closed.",
    )
    max_message_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest signaling message accepted (a subscribe offer has a section per track received: ~2.7 kB each from Chrome).",
    )
    max_messages_per_second: float = Field(
        50.0, gt=0, description="Signaling messages one participant may send per second (burst: twice that)."
    )
    max_data_bytes: int = Field(
        16384, ge=16, description="Largest chat/app message relayed between participants."
    )
    speaker_interval: float = Field(
        0.3,
        ge=0.05,
        le=5,
        description="Seconds between active-speaker decisions (audio-level header extension).",
    )
    empty_timeout: float = Field(
        30.0, ge=0, description="Seconds an empty room is kept (its id and settings) before it is closed."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes rooms run in (one per core); above 1 each room lives in one worker, whose ICE port is webrtc.listen's port + 1 + its index (UDP and TCP; room bridges are off).",
    )
    bridge: bool = Field(
        True,
        description="Publish each participant's camera+microphone as hub path rooms/{room}/{identity} (and screen as .../screen), for HLS/RTMP/WHEP and recording.",
    )

    @model_validator(mode="after")
    def _jwt(self) -> RoomsConfig:
        if self.auth == "jwt" and self.jwt is None:
            raise ValueError("rooms.auth jwt needs rooms.jwt (a secret or public_key)")
        if self.jwt is not None and self.jwt.jwks_url is not None:
            raise ValueError("rooms.jwt takes a secret or a public_key (JWKS is not supported for rooms)")
        return self


class PathConfig(_Model):
    """Per-path behaviour. Every key has a default; `paths:` entries override `path_defaults:`."""

    gop_cache: bool = Field(
        True, description="Keep the frames since the last keyframe so new readers start at once."
    )
    gop_cache_max_frames: int = Field(
        1500, ge=1, description="GOP cache bound in frames; a longer GOP is not cached."
    )
    gop_cache_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="GOP cache bound in bytes; a larger GOP is not cached."
    )
    reader_backlog_bytes: int = Field(
        2 * 1024 * 1024,
        ge=16 * 1024,
        description="Bytes a reader may have unsent before it skips to the next keyframe.",
    )
    reader_max_lag: float = Field(
        10.0, gt=0, description="Seconds a reader may stay behind (skipping) before it is disconnected."
    )
    write_coalesce: float = Field(
        0.0,
        ge=0,
        le=1.0,
        description=(
            "Seconds to gather frames into one write per reader (like SRS's mw_latency): fewer "
            "send() calls per player for that much added latency; 0 writes at the end of each loop turn."
        ),
    )
    frames_buffer: int = Field(256, ge=1, description="Frames buffered for a library `frames()` consumer.")
    publisher_grace: float = Field(
        0.0,
        ge=0,
        description="Seconds readers wait for a returning publisher before they are told the stream ended.",
    )
    takeover: bool = Field(
        False, description="A new publisher replaces the current one instead of being refused."
    )
    max_readers: int = Field(0, ge=0, description="Most readers on the path at once; 0 means no limit.")
    hls_variant: Literal["lowLatency", "fmp4", "mpegts"] = Field(
        "lowLatency",
        description="HLS flavour of index.m3u8: LL-HLS with parts, fMP4 segments, or MPEG-TS for legacy players.",
    )
    hls_segment_duration: float = Field(
        1.0,
        ge=0.1,
        le=30,
        description="Target segment length (cut at the next keyframe after it); 2-6 s suits classic HLS.",
    )
    hls_part_duration: float = Field(0.2, ge=0.05, le=5, description="LL-HLS partial segment target.")
    hls_segment_count: int = Field(
        7, ge=2, le=100, description="Segments kept in memory and listed (sliding window)."
    )
    hls_always: bool = Field(
        False, description="Mux HLS/DASH while the path is published, not only on demand."
    )
    hls_idle_timeout: float = Field(
        60.0, gt=0, description="Seconds without an HLS/DASH request before on-demand muxing stops."
    )
    publish_auth: list[AuthMethod] = Field(
        ["open"], description="Who may publish: open, users, jwt, signed_url, http (any one suffices)."
    )
    read_auth: list[AuthMethod] = Field(
        ["open"], description="Who may read (play, HLS/DASH, RTSP): the same methods as publish_auth."
    )
    max_publish_bitrate: int = Field(
        0, ge=0, description="Bits per second a publisher may send (averaged over 5 s); 0 means no limit."
    )
    hls_encryption: Literal["none", "aes-128"] = Field(
        "none",
        description="Encrypt HLS segments with AES-128 (fmp4 and mpegts variants); keys are served under read_auth.",
    )
    hls_key_rotation: int = Field(
        0, ge=0, description="Segments per AES-128 key; 0 keeps one key for as long as the path is published."
    )
    source: str | None = Field(
        None,
        description=(
            "Pull the path from another server instead of waiting for a publisher: rtsp://, rtsps:// "
            "(user:password@ in the URL for cameras that ask) or rtmp://. Exact path names only."
        ),
    )
    source_protocol: Literal["auto", "udp", "tcp"] = Field(
        "auto",
        description="RTP transport for rtsp:// sources; auto tries UDP and falls back to TCP when nothing arrives.",
    )
    source_on_demand: bool = Field(
        False, description="Connect to the source only while someone reads the path (else always)."
    )
    source_on_demand_start_timeout: float = Field(
        10.0, gt=0, description="Seconds a reader waits for an on-demand source to deliver its tracks."
    )
    source_on_demand_close_after: float = Field(
        10.0, gt=0, description="Seconds without readers before an on-demand source is disconnected."
    )
    source_grace: float = Field(
        10.0, ge=0, description="Seconds readers stay attached while a lost source reconnects."
    )


#: The same keys as PathConfig, each optional: what one `paths:` entry may override.
PathOverrides: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PathOverrides",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (Annotated[field.annotation, Field(), *field.metadata] | None, None)  # keeps ge/gt bounds
        for name, field in PathConfig.model_fields.items()
    },
)


def _check_path_key(key: str) -> str:
    if key.startswith("~"):
        try:
            re.compile(key[1:])
        except re.error as exc:
            raise ValueError(f"bad regular expression in path {key!r}: {exc}") from exc
    return key


SOURCE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps")
PathKey = Annotated[str, Field(min_length=1)]


class Config(_Model):
    log_level: str = Field("info", description="debug, info, warning or error.")
    max_connections: int = Field(
        10000, ge=1, description="Most client connections at once, all protocols together."
    )
    max_connections_per_ip: int = Field(
        0, ge=0, description="Most connections from one client address at once; 0 means no limit."
    )
    tls: TlsConfig | None = Field(
        None, description="Certificate for every TLS listener (HTTPS, RTMPS, RTSPS) that has none of its own."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig)  # type: ignore[arg-type]
    rtmp: RtmpConfig = Field(default_factory=RtmpConfig)  # type: ignore[arg-type]
    http: HttpConfig = Field(default_factory=HttpConfig)  # type: ignore[arg-type]
    rtsp: RtspConfig = Field(default_factory=RtspConfig)  # type: ignore[arg-type]
    webrtc: WebRtcConfig = Field(default_factory=WebRtcConfig)  # type: ignore[arg-type]
    rooms: RoomsConfig = Field(default_factory=RoomsConfig)  # type: ignore[arg-type]
    srt: ReservedListener = Field(default_factory=lambda: ReservedListener(listen=":8890"))
    path_defaults: PathConfig = Field(default_factory=PathConfig)  # type: ignore[arg-type]
    paths: dict[PathKey, PathOverrides | None] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Per-path overrides of path_defaults, by exact name or `~regex` (first match wins).",
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("log_level must be debug, info, warning or error")
        return value.lower()

    _path_cache: dict[str, PathConfig] = PrivateAttr(default_factory=dict)

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, paths: dict[str, Any]) -> dict[str, Any]:
        for key, value in paths.items():
            _check_path_key(key)
            source = getattr(value, "source", None)
            if source is None:
                continue
            if key.startswith("~"):
                raise ValueError(f"path {key!r}: a source needs an exact path name, not a pattern")
            from .hub.paths import validate_path  # here: the hub package imports this module

            validate_path(key)
            if source.split("://", 1)[0].lower() not in SOURCE_SCHEMES or "://" not in source:
                raise ValueError(
                    f"path {key!r}: source must start with one of {', '.join(SOURCE_SCHEMES)}://"
                )
        return paths

    @model_validator(mode="after")
    def _references(self) -> Config:
        """Auth methods and TLS listeners must have what they need configured."""
        auth = self.auth
        configured = {
            "open": True,
            "users": bool(auth.users),
            "jwt": auth.jwt is not None,
            "signed_url": auth.signed_urls is not None,
            "http": auth.http is not None,
        }
        where: list[tuple[str, list[str]]] = [("auth.api", list(auth.api))]
        for prefix, model in [
            ("path_defaults", self.path_defaults),
            *((f"paths.{k}", v) for k, v in self.paths.items()),
        ]:
            for key in ("publish_auth", "read_auth"):
                methods = getattr(model, key, None) if model is not None else None
                if methods:
                    where.append((f"{prefix}.{key}", methods))
        for name, methods in where:
            for method in methods:
                if not configured[method]:
                    section = {"users": "auth.users", "signed_url": "auth.signed_urls"}.get(
                        method, f"auth.{method}"
                    )
                    raise ValueError(f"{name} uses {method!r} but {section} is not configured")
        listeners = [
            ("rtmp.rtmps", self.rtmp.rtmps),
            ("rtsp.rtsps", self.rtsp.rtsps),
            ("http.https", self.http.https),
        ]
        for name, listener in listeners:
            if listener is not None and (listener.cert is None or listener.key is None) and self.tls is None:
                raise ValueError(f"{name} needs cert and key, or a top-level tls section")
        return self

    @field_validator("path_defaults")
    @classmethod
    def _no_default_source(cls, defaults: PathConfig) -> PathConfig:
        if defaults.source is not None:
            raise ValueError("path_defaults cannot have a source: give it to an exact path under paths:")
        return defaults

    def path_config(self, path: str) -> PathConfig:
        """The settings for one path: an exact key, else the first matching `~regex`, else defaults."""
        cached = self._path_cache.get(path)
        if cached is not None:
            return cached
        overrides = self.paths.get(path)
        if path not in self.paths:
            for key, value in self.paths.items():
                if key.startswith("~") and _regex(key[1:]).search(path):
                    overrides = value
                    break
        result = self.path_defaults
        if overrides is not None:
            merged = {**self.path_defaults.model_dump(), **overrides.model_dump(exclude_none=True)}
            result = PathConfig(**merged)
        if len(self._path_cache) < 10000:
            self._path_cache[path] = result
        return result


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _line_index(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    """Map every key path in the YAML document to its 1-based line, for error messages."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            out[path] = key_node.start_mark.line + 1
            _line_index(value_node, path, out)


def load_config(path: str | Path | None = None, text: str | None = None) -> Config:
    """Load and validate a config file (or YAML text); no file at all means the defaults."""
    source = str(path) if path is not None else "<config>"
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from exc
    if not text or not text.strip():
        return Config()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            key = ".".join(loc) or "(top level)"
            line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
            where = f"{source}:{line}" if line else source
            reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            messages.append(f"{where}: {key}: {reason}")
        raise ConfigError("\n".join(messages)) from None


def reference_markdown() -> str:
    """docs/configuration.md, generated from the model so that the two cannot disagree."""
    lines = [
        "# Configuration reference",
        "",
        "streamhive reads one YAML file (`streamhive serve --config FILE`); with no file every key",
        "has the default below. Unknown keys and bad values stop the server with an error naming the",
        "key and its line. This page is generated from `streamhive.config` "
        "(`streamhive config-reference`); a test keeps them equal.",
        "",
    ]

    def section(title: str, model: type[BaseModel], prefix: str) -> None:
        lines.extend([f"## `{title}`", "", "| key | default | meaning |", "| --- | --- | --- |"])
        for name, field in model.model_fields.items():
            if field.default_factory is not None or field.is_required():
                default = "(required)" if field.is_required() else "(see section)"
            else:
                default = f"`{field.default!r}`" if field.default is not None else "(absent)"
            lines.append(f"| `{prefix}{name}` | {default} | {field.description or ''} |")
        lines.append("")

    section("top level", Config, "")
    section("tls", TlsConfig, "tls.")
    section("auth", AuthConfig, "auth.")
    section("auth.users[]", UserConfig, "auth.users[].")
    section("auth.jwt", JwtConfig, "auth.jwt.")
    section("auth.signed_urls", SignedUrlConfig, "auth.signed_urls.")
    section("auth.http", HttpAuthConfig, "auth.http.")
    section("auth.hooks", HooksConfig, "auth.hooks.")
    section("rtmp", RtmpConfig, "rtmp.")
    section("rtmp.rtmps", RtmpsConfig, "rtmp.rtmps.")
    section("rtsp", RtspConfig, "rtsp.")
    section("rtsp.rtsps", RtspsConfig, "rtsp.rtsps.")
    section("http", HttpConfig, "http.")
    section("http.https", HttpsConfig, "http.https.")
    section("webrtc", WebRtcConfig, "webrtc.")
    section("webrtc.ice_servers (each entry)", IceServerConfig, "webrtc.ice_servers[].")
    section("rooms", RoomsConfig, "rooms.")
    section("rooms.jwt", JwtConfig, "rooms.jwt.")
    lines.extend(
        [
            "## `srt`",
            "",
            "Takes `listen` (default `:8890`). The key is reserved so that a config",
            "stays valid as the protocol lands; this release does not open the port.",
            "",
        ]
    )
    section("path_defaults (and each entry of paths)", PathConfig, "")
    lines.extend(
        [
            "`paths:` maps a path name (`live/cam1`) or a pattern (`~^live/`) to overrides of any key",
            "above. Exact names win over patterns; patterns are tried in file order.",
            "",
            "```yaml",
            "path_defaults:",
            "  publisher_grace: 5",
            "paths:",
            "  live/cam1:",
            "    takeover: true",
            "  ~^lowlatency/:",
            "    gop_cache: false",
            "```",
            "",
        ]
    )
    return "\n".join(lines)
