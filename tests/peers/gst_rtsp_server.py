#!/usr/bin/python3
"""Independent RTSP server (GStreamer gst-rtsp-server) used as an "IP camera"
peer by streamhive's interop tests.

Run with the *system* Python (PyGObject is a Debian package, not in the venv):

    /usr/bin/python3 tests/peers/gst_rtsp_server.py --port 8554 [--user U --password P]

Mounts (all live, 320x240 @ 25 fps, keyframe every 25 frames, shared media:
one pipeline per mount for all clients):

    /h264aac   H.264 (constrained baseline) + AAC-LC 48 kHz stereo (mpeg4-generic)
    /h265pcma  H.265 (Main)                 + G.711 A-law 8 kHz mono (PT 8)
    /h264pcmu  H.264 (constrained baseline) + G.711 mu-law 8 kHz mono (PT 0)
    /h264      H.264 (constrained baseline), video only

Prints ``READY <port>`` (the actual bound port, so ``--port 0`` works) on stdout
once listening, and exits with status 0 on SIGTERM or SIGINT.  Exit status 1:
the port could not be bound; 2: a GStreamer package is missing (``--check``
only tests for that, printing ``OK``).
"""

import argparse
import base64
import signal
import sys

APT_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad"
)

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as exc:
    print(
        f"MISSING {exc}; needs: apt-get install --no-install-recommends {APT_PACKAGES}",
        file=sys.stderr,
    )
    sys.exit(2)

WIDTH, HEIGHT, FPS = 320, 240, 25
KEYINT = 25  # ~1 s GOP

VIDEO_SRC = (
    "videotestsrc is-live=true pattern=smpte horizontal-speed=4 "
    f"! video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1 "
    "! videoconvert ! video/x-raw,format=I420 "
)
H264 = (
    VIDEO_SRC + f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={KEYINT} threads=1 "
    "bitrate=400 ! video/x-h264,profile=constrained-baseline "
    "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 "
)
H265 = (
    VIDEO_SRC + "! x265enc tune=zerolatency speed-preset=ultrafast "
    f"key-int-max={KEYINT} bitrate=400 ! video/x-h265,profile=main "
    "! h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1 "
)
AAC = (
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 samplesperbuffer=1024 "
    "! audioconvert ! audioresample "
    "! audio/x-raw,format=S16LE,rate=48000,channels=2 "
    "! voaacenc bitrate=64000 ! aacparse ! rtpmp4gpay name=pay1 pt=97 "
)
G711_SRC = (
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 samplesperbuffer=160 "
    "! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 "
)
PCMA = G711_SRC + "! alawenc ! rtppcmapay name=pay1 pt=8 "
PCMU = G711_SRC + "! mulawenc ! rtppcmupay name=pay1 pt=0 "

# element -> Debian package that ships it (for --check / error messages)
ELEMENTS = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "rtpbin": "gstreamer1.0-plugins-good",
    "udpsink": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtph265pay": "gstreamer1.0-plugins-good",
    "rtpmp4gpay": "gstreamer1.0-plugins-good",
    "rtppcmapay": "gstreamer1.0-plugins-good",
    "rtppcmupay": "gstreamer1.0-plugins-good",
    "alawenc": "gstreamer1.0-plugins-good",
    "mulawenc": "gstreamer1.0-plugins-good",
    "aacparse": "gstreamer1.0-plugins-good",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "x265enc": "gstreamer1.0-plugins-bad",
    "voaacenc": "gstreamer1.0-plugins-bad",
    "h264parse": "gstreamer1.0-plugins-bad",
    "h265parse": "gstreamer1.0-plugins-bad",
}

MOUNTS = {
    "/h264aac": H264 + AAC,
    "/h265pcma": H265 + PCMA,
    "/h264pcmu": H264 + PCMU,
    "/h264": H264,
}

TRANSPORTS = {
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
}

ROLE = "viewer"  # the one role an authenticated user gets


def parse_transports(text):
    protocols = GstRtsp.RTSPLowerTrans(0)
    for name in text.split(","):
        name = name.strip().lower()
        if name not in TRANSPORTS:
            raise argparse.ArgumentTypeError(f"unknown transport {name!r}")
        protocols |= TRANSPORTS[name]
    return protocols


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8554, help="0 = pick a free port")
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--user", help="require authentication with this user")
    p.add_argument("--password", default="", help="password for --user")
    p.add_argument(
        "--auth",
        choices=("both", "basic", "digest"),
        default="both",
        help="auth methods offered when --user is given (default: both; "
        "clients such as ffmpeg then pick Digest)",
    )
    p.add_argument(
        "--transports",
        type=parse_transports,
        default="udp,tcp",
        help="comma-separated lower transports allowed: udp, tcp (default both)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only check that every GStreamer element is installed; "
        "print OK and exit 0, else list what is missing and exit 2",
    )
    return p.parse_args(argv)


def missing_elements():
    return sorted(
        f"{name} ({pkg})" for name, pkg in ELEMENTS.items() if Gst.ElementFactory.find(name) is None
    )


def make_factory(launch, role, protocols):
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + ")")
    factory.set_shared(True)
    # Behave like a camera: a live stream cannot be seeked.  Without this the
    # "Range: npt=0.000-" that clients such as ffmpeg send in PLAY makes
    # gst-rtsp-server do a flushing seek on the *shared* pipeline, which
    # restarts the RTP timestamps of every client already watching.  The
    # CLOCK_AND_OFFSET clock mode makes the media report itself as not
    # seekable, so the seek is skipped (PLAY still answers 200).
    factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
    factory.set_protocols(protocols)
    if role is not None:
        factory.add_role_from_structure(
            Gst.Structure.from_string(
                f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )[0]
        )
    return factory


def _set_supported_methods(auth, methods):
    """gst_rtsp_auth_set_supported_methods() takes a bit mask, but the
    introspection data types it as the GstRTSPAuthMethod enum, so PyGObject
    refuses BASIC|DIGEST.  Pass a single method through PyGObject and the
    combined mask through ctypes."""
    if methods in (GstRtsp.RTSPAuthMethod.BASIC, GstRtsp.RTSPAuthMethod.DIGEST):
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod(methods))
        return
    import ctypes

    lib = ctypes.CDLL("libgstrtspserver-1.0.so.0")
    lib.gst_rtsp_auth_set_supported_methods.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.gst_rtsp_auth_set_supported_methods.restype = None
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype = ctypes.c_void_p
    get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
    lib.gst_rtsp_auth_set_supported_methods(get_ptr(auth.__gpointer__, None), methods)


def make_auth(user, password, methods):
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    supported = 0
    if methods in ("both", "basic"):
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth.add_basic(basic, token)
        supported |= int(GstRtsp.RTSPAuthMethod.BASIC)
    if methods in ("both", "digest"):
        auth.add_digest(user, password, token)
        supported |= int(GstRtsp.RTSPAuthMethod.DIGEST)
    _set_supported_methods(auth, supported)
    return auth


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    Gst.init(None)

    missing = missing_elements()
    if missing:
        print("MISSING elements: " + ", ".join(missing), file=sys.stderr)
        return 2
    if args.check:
        print("OK", flush=True)
        return 0

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))

    role = None
    if args.user:
        role = ROLE
        server.set_auth(make_auth(args.user, args.password, args.auth))

    mounts = server.get_mount_points()
    for path, launch in MOUNTS.items():
        mounts.add_factory(path, make_factory(launch, role, args.transports))

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    def stop(*_):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)

    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
