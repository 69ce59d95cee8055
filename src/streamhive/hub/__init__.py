"""The hub: Streams, Tracks, Frames, readers and the path registry."""

from .frame import Frame, Track
from .hub import Hub, Refused
from .paths import BadPath, validate_path
from .session import Session
from .stream import Muxer, Reader, Stream

__all__ = [
    "BadPath",
    "Frame",
    "Hub",
    "Muxer",
    "Reader",
    "Refused",
    "Session",
    "Stream",
    "Track",
    "validate_path",
]
