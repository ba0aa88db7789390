"""A loopback RTSP server for tests: GStreamer's gst-rtsp-server serving a live test pattern.

Run with the system Python, which has the GObject bindings:
    /usr/bin/python3 tests/servers/rtsp_server.py PORT [WIDTHxHEIGHT] [FPS]
It prints "ready" once it listens on 127.0.0.1:PORT/test, and serves until killed.
Video: H.264 (x264enc, zero-latency, a keyframe every second); audio: Opus, a 440 Hz tone.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port = sys.argv[1]
    width, height = (sys.argv[2] if len(sys.argv) > 2 else "160x120").split("x")
    fps = sys.argv[3] if len(sys.argv) > 3 else "25"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 "
        "audiotestsrc is-live=true freq=440 ! audioconvert ! audioresample ! opusenc ! rtpopuspay name=pay1 pt=97 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
