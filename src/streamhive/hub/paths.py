"""Path names: the one place that decides which names a Stream may have."""

from __future__ import annotations

MAX_PATH_LENGTH = 255


class BadPath(ValueError):
    """A path name that no stream may have; the message says why."""


def validate_path(name: str) -> str:
    """Return ``name`` without surrounding slashes, or raise BadPath.

    Paths appear in URLs, file names (recordings) and logs, so anything that could escape a
    directory or confuse a log line is refused here rather than in each protocol.
    """
    name = name.strip("/")
    if not name:
        raise BadPath("empty path")
    if len(name) > MAX_PATH_LENGTH:
        raise BadPath(f"path longer than {MAX_PATH_LENGTH} characters")
    if "\\" in name:
        raise BadPath("backslash in path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadPath("control character in path")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadPath("empty, '.' or '..' segment in path")
    return name
