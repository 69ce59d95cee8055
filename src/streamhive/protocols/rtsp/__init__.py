"""RTSP 1.0 (RFC 2326), sans-IO: messages and interleaved frames, header grammars, URLs and auth.

Everything here turns bytes or header strings into objects and back, and reports protocol
violations as ``RtspError`` carrying the status code the server should answer with; sessions, RTP
and sockets live in the adapters.
"""
