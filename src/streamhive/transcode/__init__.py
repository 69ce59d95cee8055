"""Transcoding between codecs the protocols disagree on, kept off the event loop.

WebRTC players only take Opus while RTMP/HLS players only take AAC, so a stream published on one
side needs its audio re-encoded to be read on the other. PyAV (FFmpeg) does the work and releases
the GIL inside the codec calls, so a worker thread per transcoder is enough to keep the event loop
responsive; the cores here are plain objects that a thread (or a process) drives.
"""
