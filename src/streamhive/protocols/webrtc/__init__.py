"""WebRTC, sans-IO: SDP offer/answer for WHIP and WHEP, ICE-lite, DTLS and SRTP glue."""


class WebRtcError(ValueError):
    """Malformed or unusable WebRTC input."""
