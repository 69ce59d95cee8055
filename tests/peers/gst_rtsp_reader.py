#!/usr/bin/python3
"""Independent RTSP player (GStreamer's rtspsrc) for streamhive's interop tests.

    /usr/bin/python3 tests/peers/gst_rtsp_reader.py URL --seconds 4 --protocols tcp|udp

Reads the URL for that long and prints one JSON line: per media kind ("video", "audio") the
caps of the depayloaded stream and how many buffers (access units / audio frames) arrived.
Nothing is decoded (the decoders live in packages the tests do not need).
"""

import argparse
import json
import sys

try:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst
except (ImportError, ValueError) as exc:
    print(f"MISSING {exc}", file=sys.stderr)
    sys.exit(2)

DEPAY = {"H264": "rtph264depay", "H265": "rtph265depay", "MPEG4-GENERIC": "rtpmp4gdepay",
         "PCMA": "rtppcmadepay", "PCMU": "rtppcmudepay", "OPUS": "rtpopusdepay"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--protocols", default="tcp")
    args = parser.parse_args()
    Gst.init(None)
    pipeline = Gst.Pipeline()
    src = Gst.ElementFactory.make("rtspsrc")
    src.set_property("location", args.url)
    src.set_property("protocols", args.protocols)
    src.set_property("latency", 100)
    pipeline.add(src)
    counts: dict[str, dict[str, object]] = {}

    def on_pad(_src: object, pad: object) -> None:
        caps = pad.get_current_caps().get_structure(0)
        kind, encoding = caps.get_string("media"), caps.get_string("encoding-name")
        depay = Gst.ElementFactory.make(DEPAY.get(encoding, "fakesink"))
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)
        entry = counts.setdefault(kind, {"encoding": encoding, "buffers": 0})

        def handoff(_sink: object, _buffer: object, _pad: object) -> None:
            entry["buffers"] += 1  # type: ignore[operator]

        sink.connect("handoff", handoff)
        for element in (depay, sink):
            pipeline.add(element)
            element.sync_state_with_parent()
        pad.link(depay.get_static_pad("sink"))
        if depay.get_factory().get_name() != "fakesink":
            depay.link(sink)

    src.connect("pad-added", on_pad)
    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    errors: list[str] = []

    def on_message(_bus: object, message: object) -> None:
        if message.type == Gst.MessageType.ERROR:
            errors.append(str(message.parse_error()[0].message))
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(args.seconds * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps({"media": counts, "errors": errors}))


if __name__ == "__main__":
    main()
