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
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model, field_validator


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


class RtmpsConfig(_Model):
    listen: str = Field(":1936", description="Address of the RTMPS (RTMP over TLS) listener.")
    cert: str = Field(description="PEM certificate chain file.")
    key: str = Field(description="PEM private key file.")

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


class HttpConfig(_Model):
    enabled: bool = Field(True, description="Serve HTTP-FLV, WS-FLV, the API and metrics.")
    listen: str = Field(":8080", description="HTTP listen address, HOST:PORT.")
    cors_origin: str = Field("*", description="Access-Control-Allow-Origin sent with media responses.")
    max_blocked_requests: int = Field(
        10000, ge=1, description="LL-HLS blocking playlist/part requests waiting at once, all paths together."
    )

    _listen = field_validator("listen")(_check_listen)


class RtspsConfig(_Model):
    listen: str = Field(":8322", description="Address of the RTSPS (RTSP over TLS, TCP transport) listener.")
    cert: str = Field(description="PEM certificate chain file.")
    key: str = Field(description="PEM private key file.")

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
        60.0, gt=0, description="Seconds a UDP session lives without requests, RTP or RTCP from its client."
    )
    request_timeout: float = Field(
        10.0, gt=0, description="Seconds a new connection has to send its first request."
    )
    max_request_bytes: int = Field(
        16384, ge=1024, description="Largest request head (request line and headers) accepted."
    )
    mtu: int = Field(1400, ge=576, le=9000, description="Largest RTP packet sent to readers.")
    realm: str = Field("streamhive", description="Realm of Basic/Digest challenges.")
    rtsps: RtspsConfig | None = Field(None, description="Optional RTSPS listener (TLS); off when absent.")

    _listen = field_validator("listen")(_check_listen)


class ReservedListener(_Model):
    """Listeners of protocols that later releases serve; the key is accepted so configs stay stable."""

    listen: str = Field(description="Listen address, HOST:PORT (not served yet by this release).")

    _listen = field_validator("listen")(_check_listen)


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
    rtmp: RtmpConfig = Field(default_factory=RtmpConfig)  # type: ignore[arg-type]
    http: HttpConfig = Field(default_factory=HttpConfig)  # type: ignore[arg-type]
    rtsp: RtspConfig = Field(default_factory=RtspConfig)  # type: ignore[arg-type]
    webrtc: ReservedListener = Field(default_factory=lambda: ReservedListener(listen=":8189"))
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
    section("rtmp", RtmpConfig, "rtmp.")
    section("rtmp.rtmps", RtmpsConfig, "rtmp.rtmps.")
    section("http", HttpConfig, "http.")
    lines.extend(
        [
            "## `rtsp`, `webrtc`, `srt`",
            "",
            "Each takes `listen` (defaults `:8554`, `:8189`, `:8890`). The keys are reserved so that",
            "configs stay valid as these protocols land; this release does not open these ports.",
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
