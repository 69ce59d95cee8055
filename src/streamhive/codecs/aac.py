"""AAC helpers: AudioSpecificConfig parsing and building, ADTS headers.

FLV, MP4 and RTP carry AAC as raw frames plus an AudioSpecificConfig, while MPEG-TS needs an
ADTS header on every frame; these helpers convert between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader

SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
# Channel count per channelConfiguration (ISO 14496-3 table 1.19); 0 means "in a PCE".
_CHANNELS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 14: 8}
_CONFIG_FOR_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}
_SBR_TYPES = (5, 29)  # HE-AAC (SBR) and HE-AACv2 (SBR + PS), explicitly signalled
_ADTS_MAX_FRAME = (1 << 13) - 1 - 7


@dataclass(frozen=True, slots=True)
class AacConfig:
    """What an AudioSpecificConfig says about the stream.

    ``object_type``/``sample_rate`` are the core codec's (what ADTS must carry: 2 and the half
    rate for HE-AAC); ``extension_sample_rate`` is the SBR output rate when it is signalled.
    """

    object_type: int
    sample_rate: int
    channels: int
    extension_sample_rate: int | None = None

    @property
    def output_sample_rate(self) -> int:
        """The rate a decoder produces, which is what players and the API report."""
        return self.extension_sample_rate or self.sample_rate


def _read_object_type(r: BitReader) -> int:
    aot = r.u(5)
    return 32 + r.u(6) if aot == 31 else aot


def _read_sample_rate(r: BitReader) -> int:
    index = r.u(4)
    if index == 15:
        rate = r.u(24)
        if rate == 0:
            raise CodecError("AudioSpecificConfig has an explicit sample rate of 0")
        return rate
    if index >= len(SAMPLE_RATES):
        raise CodecError(f"reserved AAC sampling frequency index {index}")
    return SAMPLE_RATES[index]


def parse_audio_specific_config(asc: bytes) -> AacConfig:
    """Parse an AudioSpecificConfig (escape object types, explicit rates, explicit SBR/PS)."""
    r = BitReader(asc)
    object_type = _read_object_type(r)
    if object_type == 0:
        raise CodecError("AudioSpecificConfig has object type 0 (null)")
    sample_rate = _read_sample_rate(r)
    channel_config = r.u(4)
    channels = _CHANNELS.get(channel_config)
    if channels is None:
        raise CodecError(f"reserved AAC channel configuration {channel_config}")
    extension_rate = None
    if object_type in _SBR_TYPES:
        extension_rate = _read_sample_rate(r)
        object_type = _read_object_type(r)
        if object_type == 0:
            raise CodecError("AudioSpecificConfig has core object type 0 (null)")
    return AacConfig(object_type, sample_rate, channels, extension_rate)


def make_audio_specific_config(object_type: int, sample_rate: int, channels: int) -> bytes:
    """Build a minimal AudioSpecificConfig (GASpecificConfig with all flags zero)."""
    if not 1 <= object_type < 96 or object_type == 31:  # 31 is the escape code itself
        raise CodecError(f"AAC object type {object_type} out of range")
    if object_type in _SBR_TYPES:
        raise CodecError("explicit SBR/PS signalling needs extension fields; build the core type (2)")
    config = _CONFIG_FOR_CHANNELS.get(channels)
    if config is None:
        raise CodecError(f"no AAC channel configuration for {channels} channels")
    value, nbits = (object_type, 5) if object_type < 31 else ((31 << 6) | (object_type - 32), 11)
    if sample_rate in SAMPLE_RATES:
        value, nbits = (value << 4) | SAMPLE_RATES.index(sample_rate), nbits + 4
    elif 0 < sample_rate < 1 << 24:
        value, nbits = (value << 28) | (15 << 24) | sample_rate, nbits + 28
    else:
        raise CodecError(f"AAC sample rate {sample_rate} out of range")
    value, nbits = (value << 7) | (config << 3), nbits + 7  # channels + 3 GASpecificConfig flags
    pad = -nbits % 8
    return (value << pad).to_bytes((nbits + pad) // 8, "big")


def adts_header(asc_info: AacConfig, frame_len: int) -> bytes:
    """The 7-byte ADTS header (no CRC) that precedes a raw AAC frame of ``frame_len`` bytes."""
    if not 1 <= asc_info.object_type <= 4:
        raise CodecError(f"ADTS cannot carry AAC object type {asc_info.object_type}")
    if asc_info.sample_rate not in SAMPLE_RATES:
        raise CodecError(f"ADTS cannot carry a sample rate of {asc_info.sample_rate}")
    config = _CONFIG_FOR_CHANNELS.get(asc_info.channels)
    if config is None:
        raise CodecError(f"ADTS cannot carry {asc_info.channels} channels")
    if not 0 <= frame_len <= _ADTS_MAX_FRAME:
        raise CodecError(f"AAC frame of {frame_len} bytes is too large for ADTS")
    header = (
        (0xFFF1 << 40)  # syncword, MPEG-4, layer 0, no CRC
        | ((asc_info.object_type - 1) << 38)
        | (SAMPLE_RATES.index(asc_info.sample_rate) << 34)
        | (config << 30)
        | ((frame_len + 7) << 13)
        | (0x7FF << 2)  # buffer fullness: variable bit rate
    )
    return header.to_bytes(7, "big")
