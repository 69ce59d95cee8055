"""Path patterns of the access rules: globs and ``~regex``, matched whole.

Globs split on ``/``: ``*`` matches within one segment (``live/*`` admits ``live/cam1`` but not
``live/a/b``, ``live`` or ``live/``; a lone ``*`` is every one-segment path), and a segment that
is ``**`` spans whole segments the way gitignore does: ``**`` alone is every path, ``cams/**``
everything below ``cams`` (not ``cams`` itself), ``**/raw`` a ``raw`` at any depth and
``a/**/b`` zero or more segments between. Everything else is literal. Segments are never empty,
so no pattern admits ``live//x`` or a trailing slash.

``~regex`` patterns must match the *whole* path (``re.fullmatch``): a rule written ``~live/.*``
must not also admit ``evil/live/x``, which ``re.search`` would. An invalid regex admits nothing.
Compiled patterns are cached, bounded, since token claims carry patterns too.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["path_allowed"]

_SEGMENT = r"[^/]+"


def path_allowed(patterns: list[str], path: str) -> bool:
    """Whether any of ``patterns`` admits ``path``; an empty list admits nothing."""
    for pattern in patterns:
        compiled = _compile(pattern)
        if compiled is not None and compiled.fullmatch(path):
            return True
    return False


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | None:
    if pattern.startswith("~"):
        try:
            return re.compile(pattern[1:])
        except (re.error, RecursionError, OverflowError):
            return None
    return re.compile(_glob_regex(pattern))


def _glob_regex(pattern: str) -> str:
    segments: list[str] = []
    for segment in pattern.split("/"):
        if segment and set(segment) == {"*"} and len(segment) > 1:
            segment = "**"
        if not (segment == "**" and segments and segments[-1] == "**"):
            segments.append(segment)
    last = len(segments) - 1
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment == "**":
            if last == 0:
                out.append(f"{_SEGMENT}(?:/{_SEGMENT})*")
            elif i == 0:
                out.append(f"(?:{_SEGMENT}/)*")
            elif i == last:
                out.append(f"(?:/{_SEGMENT})+")
            else:
                out.append(f"/(?:{_SEGMENT}/)*")
            continue
        if i > 0 and segments[i - 1] != "**":
            out.append("/")
        if segment == "*":
            out.append(_SEGMENT)
        else:
            # A literal segment that is empty ("live/") can never match a real path; keep it so.
            out.append("[^/]*".join(re.escape(part) for part in segment.split("*")) or "(?!)")
    return "".join(out)
