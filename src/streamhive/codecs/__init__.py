"""Codec bitstream helpers: NAL unit framing, parameter set parsing, AAC configs.

Every parser here raises :class:`CodecError` on bad input, so protocol code can turn any
malformed publisher data into a clean protocol error with one ``except ValueError``.
"""


class CodecError(ValueError):
    """A codec bitstream or configuration record is malformed or unsupported."""
