"""Multi-party WebRTC rooms (the SFU).

- ``grants``: room tokens turned into what a participant may do.

The sans-IO pieces of the forwarding path:

- ``rtp_ext``: RFC 8285 header extensions (mid, rid, audio level) read from and stripped off
  publishers' packets.
- ``rewrite``: one subscriber's output stream per track: our SSRC and payload type, continuous
  sequence numbers and timestamps across layer and publisher switches, NACK mapping back.
- ``keyframes``: whether an RTP payload starts a keyframe, per video codec.
- ``simulcast``: layer bitrates, a subscriber's bandwidth from its feedback, layer choice.
- ``speaker``: the active speaker from the audio levels publishers send.
"""
