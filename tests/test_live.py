"""Live streams: a real RTSP server on loopback, reconnects, timeouts, live outputs read back by ffmpeg."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from conftest import ROOT, SAMPLES, ffmpeg_exe, framemd5

import vsr
from vsr.methods.base import Method

SERVER = ROOT / "tests" / "servers" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


@functools.cache
def _gst_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


# Only the tests that use the `rtsp` fixture need the GStreamer server; the others (HLS, UDP, RTMP,
# dead and refused URLs) run everywhere.
NO_SERVER = ("GStreamer RTSP server not installed (apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 "
             "python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """The GStreamer test server in a child process; can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def rtsp():
    if not _gst_available():
        pytest.skip(NO_SERVER)
    server = RtspServer(free_port())
    server.start()
    yield server
    server.stop()


def _cancel_after(frames: int):
    """An ``on_progress``/``on_start`` pair that cancels the run once ``frames`` are written."""
    pipelines = []

    def on_progress(stats):
        if stats.frames_written >= frames and pipelines:
            pipelines[0].cancel()

    return pipelines.append, on_progress


@pytest.mark.rtsp
def test_reads_a_live_rtsp_stream_with_its_audio(rtsp, tmp_path):
    out = tmp_path / "live.mkv"
    on_start, on_progress = _cancel_after(30)
    with pytest.raises(vsr.Cancelled):
        vsr.upscale(rtsp.url, str(out), method="bilinear", scale=2, on_start=on_start, on_progress=on_progress)
    frames = framemd5(out)
    assert len(frames) >= 30
    assert [f[0] for f in frames] == sorted({f[0] for f in frames})  # strictly increasing
    assert len(framemd5(out, "a:0", copy=True)) > 10
    with av.open(str(out)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (320, 240)


@pytest.mark.rtsp
def test_survives_the_server_restarting(rtsp, tmp_path):
    out = tmp_path / "restart.mkv"
    # To FFmpeg a server that goes away ends the RTSP stream as a normal end would: --live reopens it.
    proc = subprocess.Popen([sys.executable, "-m", "vsr", "run", rtsp.url, "-o", str(out), "-m", "nearest",
                             "--reconnect", "10", "--timeout", "3", "--live", "--json-progress"],
                            stderr=subprocess.PIPE, text=True)
    progress = iter(proc.stderr)

    def wait_for(predicate, limit=60.0):
        deadline = time.monotonic() + limit
        for line in progress:
            try:
                snap = json.loads(line)
            except ValueError:
                continue
            if predicate(snap):
                return snap
            assert time.monotonic() < deadline, f"gave up waiting; last progress {snap}"
        raise AssertionError(f"vsr ended early: rc={proc.wait()}")

    try:
        before = wait_for(lambda s: s["frames"] >= 20)["frames"]
        rtsp.stop()
        time.sleep(1.0)
        rtsp.start()
        wait_for(lambda s: s["reconnects"] >= 1 and s["frames"] >= before + 25)
        proc.send_signal(2)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    pts = [f[0] for f in framemd5(out)]
    assert len(pts) >= before + 25
    assert all(b > a for a, b in zip(pts, pts[1:]))  # monotonic across the gap


def test_dead_url_fails_within_the_timeout(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    port = silent.getsockname()[1]
    try:
        t = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "vsr", "run", f"rtsp://admin:hunter2@127.0.0.1:{port}/x",
                                 "-o", str(tmp_path / "out.mkv"), "--timeout", "2"],
                                capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - t
    finally:
        silent.close()
    assert result.returncode != 0
    assert "hunter2" not in result.stderr and "***@127.0.0.1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert elapsed < 30
    assert not list(tmp_path.iterdir())


def test_refused_connection_is_a_clear_error(tmp_path):
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "vsr", "probe", f"rtsp://u:topsecret@127.0.0.1:{port}/x",
                             "--timeout", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "topsecret" not in result.stderr and "***" in result.stderr


@pytest.mark.rtsp
def test_credentials_never_reach_progress_or_summary(rtsp, tmp_path):
    url = rtsp.url.replace("rtsp://", "rtsp://viewer:s3cr3t@")
    out = tmp_path / "cred.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "vsr", "run", url, "-o", str(out), "-m", "nearest",
                             "--json-progress", "--record", str(tmp_path / "rec.json")],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("{") and json.loads(line)["frames"] >= 10:
            proc.send_signal(2)
            break
    seen.extend(proc.stderr)
    proc.wait(timeout=60)
    assert "s3cr3t" not in "".join(seen)


class _Slow(Method):
    """Nearest x2 at about 8 frames/s: slower than the 25 frames/s source."""

    name, scale, radius = "slow", 2, 0

    def __call__(self, frames, ref):
        time.sleep(0.12)
        return frames[ref].repeat_interleave(2, -1).repeat_interleave(2, -2)


@pytest.mark.rtsp
def test_live_mode_drops_oldest_and_keeps_latency_bounded(rtsp, tmp_path):
    out = tmp_path / "live.mkv"
    on_start, on_progress = _cancel_after(25)
    with pytest.raises(vsr.Cancelled):
        stats_box = []
        vsr.upscale(rtsp.url, str(out), method=_Slow(), live=True, queue_size=2,
                    on_start=lambda p: (on_start(p), stats_box.append(p.stats)), on_progress=on_progress)
    stats = stats_box[0]
    assert stats.frames_dropped > 0
    assert stats.frames_written + stats.frames_dropped <= stats.frames_decoded
    # Bounded by the queues: at most ~4 frames of 0.12 s waiting, far below the unbounded backlog.
    assert stats.latency_max < 2.0
    assert len(framemd5(out)) == stats.frames_written


def test_push_to_rtmp_read_back_by_ffmpeg(tmp_path):
    port = free_port()
    received = tmp_path / "received.mkv"
    listener = subprocess.Popen([ffmpeg_exe(), "-v", "fatal", "-listen", "1", "-timeout", "30",
                                 "-i", f"rtmp://127.0.0.1:{port}/live/up", "-c", "copy", "-y", str(received)])
    try:
        time.sleep(1.0)
        vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), f"rtmp://127.0.0.1:{port}/live/up", method="bicubic", scale=2)
        listener.wait(timeout=60)
    finally:
        listener.kill()
    with av.open(str(received)) as c:
        v = c.streams.video[0].codec_context
        assert (v.width, v.height) == (640, 360)
        assert len(c.streams.audio) == 1
    assert len(framemd5(received)) == len(framemd5(SAMPLES / "vfr_audio.mp4"))


def test_hls_output_plays(tmp_path):
    playlist = tmp_path / "live.m3u8"
    vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), str(playlist), method="bilinear", scale=2)
    assert playlist.exists() and list(tmp_path.glob("*.ts"))
    assert len(framemd5(playlist)) == len(framemd5(SAMPLES / "vfr_audio.mp4"))


def test_udp_mpegts_output_read_back(tmp_path):
    port = free_port()
    received = tmp_path / "udp.ts"
    listener = subprocess.Popen([ffmpeg_exe(), "-v", "error", "-i", f"udp://127.0.0.1:{port}?timeout=3000000",
                                 "-c", "copy", "-y", str(received)])
    try:
        time.sleep(1.0)
        thread = threading.Thread(target=vsr.upscale, args=(str(SAMPLES / "vfr_audio.mp4"),
                                                              f"udp://127.0.0.1:{port}"),
                                  kwargs={"method": "nearest", "scale": 2})
        thread.start()
        thread.join(120)
        listener.wait(timeout=60)
    finally:
        listener.kill()
    with av.open(str(received)) as c:
        assert c.streams.video[0].codec_context.width == 640
    assert len(framemd5(received)) > 10
