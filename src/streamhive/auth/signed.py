"""HMAC-signed URLs: ``?expires=UNIX_TIME&sign=SIGNATURE`` grant one action on one path until then.

``sign`` is base64url (no padding) of HMAC-SHA256(secret, ``"{action}\\n{path}\\n{expires}"``).
Node-Media-Server's scheme signs ``path-expires`` with MD5 and compares with ``==``; here the
action is signed too (a watch link cannot publish), the path is the whole stream path (a link for
one path opens no other), the comparison takes constant time, expiry is exact, and a signature
whose expiry lies further ahead than ``max_validity`` is refused, so a leaked secret's worth of
"forever" links cannot be minted and trusted. The fields are unambiguous: the action is one of a
fixed set and the expiry is digits, so the path is whatever lies between the first and last
newline. A signed URL can be replayed until it expires; keep validity short.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl

from ..config import SignedUrlConfig

__all__ = ["check_signed", "sign_query"]

_SIGN = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding
_EXPIRES = re.compile(r"[0-9]{1,12}")
_MAX_FIELDS = 64


def _signature(secret: str, action: str, path: str, expires: int) -> str:
    message = f"{action}\n{path}\n{expires}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_query(secret: str, action: str, path: str, expires: int) -> str:
    """The query string (``expires=...&sign=...``) that lets ``action`` on ``path`` until ``expires``."""
    return f"expires={expires}&sign={_signature(secret, action, path, expires)}"


def check_signed(config: SignedUrlConfig, query: str, action: str, path: str, now: float) -> str | None:
    """None when ``query`` carries a valid signature for ``action`` on ``path``, else the reason."""
    try:
        fields = parse_qsl(query, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        return "malformed"
    expires_values = [value for name, value in fields if name == "expires"]
    signs = [value for name, value in fields if name == "sign"]
    if not expires_values or not signs:
        return "missing"
    # Two values for one field would leave it to chance which one a proxy or a log believes.
    if len(expires_values) > 1 or len(signs) > 1:
        return "malformed"
    sign, expires_text = signs[0], expires_values[0]
    if not _EXPIRES.fullmatch(expires_text) or not _SIGN.fullmatch(sign):
        return "malformed"
    expires = int(expires_text)
    expected = _signature(config.secret, action, path, expires)
    if not hmac.compare_digest(expected.encode(), sign.encode()):
        return "bad signature"
    if now > expires:
        return "expired"
    if expires - now > config.max_validity:
        return "too far in the future"
    return None
