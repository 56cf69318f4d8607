#!/usr/bin/python3
"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server serving
pre-encoded clips without re-encoding, on 127.0.0.1.

    /usr/bin/python3 scripts/rtsp-server.py --port 0 \
        --mount cam1=h264:samples/street.mp4 --mount cam2=h265:/tmp/clip-h265.mp4

Mount specs are NAME=CODEC:FILE with CODEC h264 or h265 (an MP4/MKV/... the demuxer
reads: FILE is demuxed, parsed and payloaded, never decoded) or NAME=annexb-h264:FILE for
a raw Annex-B stream at 25 fps (used to serve deliberately broken NAL units). A clip
ends the stream at its end: tests use clips as long as they need.

With `--auth USER:PASSWORD` every mount requires that login (basic authentication).

On start it prints `PORT <n>` on stdout (the bound port: --port 0 picks a free one),
then one line per event: `PLAY /name`, `TEARDOWN /name`, `CLIENT-CLOSED`. Debian's
python3-gi is built for /usr/bin/python3, so run it with that interpreter.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PAY = {"h264": ("h264parse", "rtph264pay"), "h265": ("h265parse", "rtph265pay")}


def say(*parts):
    print(*parts, flush=True)


def launch_line(codec, path):
    if codec.startswith("annexb-"):
        codec = codec[len("annexb-"):]
        parse, pay = PAY[codec]
        caps = f"video/x-{codec},stream-format=byte-stream,framerate=25/1"
        src = f'filesrc location="{path}" ! {caps}'
        return f"( {src} ! {parse} ! {pay} name=pay0 pt=96 config-interval=-1 )"
    parse, pay = PAY[codec]
    # parsebin-free: the container demuxer picks the video pad, the parser
    # re-times nothing, the payloader packs NAL units as they are
    src = f'filesrc location="{path}" ! parsebin'
    return f"( {src} ! {parse} config-interval=-1 ! {pay} name=pay0 pt=96 config-interval=-1 )"


def factory(codec, path, auth):
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch_line(codec, path))
    f.set_shared(False)
    if auth:
        role, _ = Gst.Structure.from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")
        f.add_role_from_structure(role)
    return f


def basic_auth(spec):
    user, password = spec.split(":", 1)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    return auth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", action="append", default=[], help="NAME=CODEC:FILE")
    ap.add_argument("--auth", metavar="USER:PASSWORD", help="require basic authentication for every mount")
    args = ap.parse_args()

    Gst.init(None)
    for el in ("parsebin", "h264parse", "h265parse", "rtph264pay", "rtph265pay", "filesrc"):
        if Gst.ElementFactory.find(el) is None:
            sys.exit(f"rtsp-server: GStreamer element {el} is missing (scripts/setup.sh installs it)")

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.auth:
        server.set_auth(basic_auth(args.auth))
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, rest = spec.split("=", 1)
        codec, path = rest.split(":", 1)
        if codec not in ("h264", "h265", "annexb-h264", "annexb-h265"):
            sys.exit(f"rtsp-server: unknown codec {codec} in {spec}")
        mounts.add_factory("/" + name.lstrip("/"), factory(codec, path, args.auth))

    def on_client(_server, client):
        client.connect("play-request", lambda _c, ctx: say("PLAY", ctx.uri.abspath))
        client.connect("teardown-request", lambda _c, ctx: say("TEARDOWN", ctx.uri.abspath))
        client.connect("closed", lambda _c: say("CLIENT-CLOSED"))

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        sys.exit(f"rtsp-server: cannot listen on 127.0.0.1:{args.port}")
    say("PORT", server.get_bound_port())

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
