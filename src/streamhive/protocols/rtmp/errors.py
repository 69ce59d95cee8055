"""The one exception RTMP cores raise, so adapters can close a session on any protocol violation."""


class RtmpError(Exception):
    """The peer broke the RTMP protocol (or a configured limit); the connection should be closed."""
