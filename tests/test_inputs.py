"""Inputs as users meet them: URLs that end or drop, SRT both ways, sizes that change midway,
truncated and unstreamable files, a forced demuxer, and secrets kept out of everything printed.

Every clip is made here with the ffmpeg binary; every network peer is real, on loopback.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from conftest import ffmpeg_exe, framemd5, run_cli

from vsr.io.source import mask_url
from vsr.engine.window import frame_windows
from vsr.types import Frame


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True, capture_output=True)


def make_mp4(path: Path, frames: int = 50, size: str = "160x120", faststart: bool = True) -> Path:
    """testsrc2 at 25 fps with a 440 Hz tone, H.264 and AAC, the index first (or last)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={frames / 25}", "-f", "lavfi", "-i",
           f"sine=frequency=440:duration={frames / 25}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
           "yuv420p", "-c:a", "aac", *(["-movflags", "+faststart"] if faststart else []), str(path))
    return path


def frame_sizes(path: Path) -> list[tuple[int, int]]:
    """``(width, height)`` of every decoded frame, as PyAV sees them (no scaling)."""
    with av.open(str(path)) as c:
        return [(f.width, f.height) for f in c.decode(video=0)]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves one file with byte ranges; the first full request can be cut off midway."""

    def do_GET(self) -> None:
        server = self.server
        data = server.data
        requested = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(requested.group(1)) if requested else 0
        server.requests.append(start)
        body = data[start:]
        if time.monotonic() < server.refuse_until:
            self.send_error(503)  # the server is away for a while
            return
        self.send_response(206 if requested else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if server.drop_after is not None and start == 0:
            cut, server.drop_after = server.drop_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            server.drops += 1
            server.refuse_until = time.monotonic() + server.away
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops midway
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server():
    """``serve(path, drop_after=None, away=0)`` → the server; ``server.url`` serves ``path``.

    With ``drop_after``, the first full request is cut off after that many bytes, and every
    request in the ``away`` seconds that follow is answered 503.
    """
    servers = []

    def serve(path: Path, drop_after: int | None = None, away: float = 0.0):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.data = path.read_bytes()
        server.drop_after, server.drops, server.requests = drop_after, 0, []
        server.away, server.refuse_until = away, 0.0
        server.url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# -- URLs that end, and URLs that drop ---------------------------------------------------------

def test_a_file_url_that_ends_is_read_once(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "out.mkv"
    result = run_cli("run", clip.as_uri(), "-o", str(out), "-m", "nearest", "--timeout", "3")
    assert result.returncode == 0, result.stderr
    assert len(framemd5(out)) == 20
    assert b"reconnect" not in result.stderr


def test_a_finite_http_download_is_read_once(tmp_path, http_server):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20)
    server = http_server(clip)
    out = tmp_path / "out.mkv"
    result = run_cli("run", server.url, "-o", str(out), "-m", "nearest", "--timeout", "3")
    assert result.returncode == 0, result.stderr
    assert len(framemd5(out)) == 20
    assert server.requests.count(0) == 1  # never reopened from the start


@pytest.mark.parametrize("away", [0.0, 2.0], ids=["back-at-once", "away-for-a-while"])
def test_an_http_download_that_drops_midway_continues_where_it_stopped(tmp_path, http_server, away):
    clip = make_mp4(tmp_path / "clip.mp4", frames=50)
    # Away for a while, the server refuses the first attempts to reopen the file too.
    server = http_server(clip, drop_after=int(clip.stat().st_size * 0.4), away=away)
    dropped, whole = tmp_path / "dropped.mkv", tmp_path / "whole.mkv"
    result = run_cli("run", server.url, "-o", str(dropped), "-m", "nearest", "--timeout", "1",
                     "--reconnect", "6", "--json-progress")
    assert result.returncode == 0, result.stderr
    progress = [json.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]
    assert server.drops == 1 and progress[-1]["reconnects"] == 1
    assert run_cli("run", str(clip), "-o", str(whole), "-m", "nearest").returncode == 0
    # Every frame once, in order, with the pixels of a run over the local file; the audio too.
    assert framemd5(dropped) == framemd5(whole)
    assert framemd5(dropped, "a:0", copy=True) == framemd5(whole, "a:0", copy=True)


def test_live_reopens_a_url_at_its_end(tmp_path):
    from vsr.io.decode import Decoder

    clip = make_mp4(tmp_path / "clip.mp4", frames=10)
    pts: list[int] = []
    with Decoder(clip.as_uri(), reconnect=1, backoff=0.01, reconnect_at_end=True) as decoder:
        for frame in decoder.frames(stop=lambda: len(pts) >= 25):  # reopened at every end: a loop
            pts.append(frame.pts)
        assert decoder.stats.reconnects == 2
    assert len(pts) == 25 and all(b > a for a, b in itertools.pairwise(pts))


# -- SRT, carried by the ffmpeg binary ---------------------------------------------------------

def _push_srt(clip: Path, url: str, retry: bool) -> subprocess.Popen:
    """The ffmpeg binary sending ``clip`` at its own pace to ``url``; a caller retries until a listener answers."""
    push = [ffmpeg_exe(), "-v", "quiet", "-re", "-i", str(clip), "-c", "copy", "-f", "mpegts", url]
    if not retry:
        return subprocess.Popen(push)
    loop = f"for i in $(seq 60); do {shlex.join(push)} && exit 0; sleep 0.5; done; exit 1"
    return subprocess.Popen(["sh", "-c", loop])


def _child_commands(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes, as every user of the machine can read them."""
    commands = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                commands.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return commands


@pytest.mark.parametrize("vsr_mode", ["caller", "listener"])
def test_srt_input_from_an_ffmpeg_peer(tmp_path, vsr_mode):
    clip = make_mp4(tmp_path / "clip.mp4", frames=50)
    port = free_port(socket.SOCK_DGRAM)
    secret = "srtphrase0123"
    peer_mode = "listener" if vsr_mode == "caller" else "caller"
    peer = _push_srt(clip, f"srt://127.0.0.1:{port}?mode={peer_mode}&passphrase={secret}", retry=peer_mode == "caller")
    out = tmp_path / "srt.mkv"
    seen: set[str] = set()
    try:
        run = subprocess.Popen([sys.executable, "-m", "vsr", "run", f"srt://127.0.0.1:{port}?mode={vsr_mode}&passphrase={secret}",
                                "-o", str(out), "-m", "nearest", "--timeout", "30"], stderr=subprocess.PIPE)
        while run.poll() is None:  # what `ps` shows of the ffmpeg vsr runs for the stream
            seen.update(c for c in _child_commands(run.pid) if "ffmpeg" in c)
            time.sleep(0.05)
        stderr = run.stderr.read()
        peer.wait(timeout=60)
    finally:
        peer.kill()
        run.kill()
    assert run.returncode == 0, stderr
    assert secret.encode() not in stderr
    assert seen and not any(secret in command for command in seen)
    frames = framemd5(out)
    # The peer, ffmpeg in SRT's live mode, does not linger: what it has not sent when it hangs up
    # is lost (a frame or two, more on a loaded machine); vsr's side keeps all that reached it.
    assert 45 <= len(frames) <= 50
    assert all(b[0] > a[0] for a, b in itertools.pairwise(frames))
    assert set(frame_sizes(out)) == {(320, 240)}
    assert len(framemd5(out, "a:0", copy=True)) > 30


# A latency window longer than vsr's default wait: the receiver holds the whole short clip back.
@pytest.mark.parametrize("latency", ["", "&latency=2000000"], ids=["default-latency", "2s-latency"])
def test_srt_output_to_an_ffmpeg_peer(tmp_path, latency):
    clip = make_mp4(tmp_path / "clip.mp4", frames=50)
    port = free_port(socket.SOCK_DGRAM)
    received = tmp_path / "received.ts"
    peer = subprocess.Popen([ffmpeg_exe(), "-v", "error", "-i", f"srt://127.0.0.1:{port}?mode=listener",
                             "-c", "copy", "-y", str(received)])
    try:
        time.sleep(1.5)  # the peer is listening
        result = run_cli("run", str(clip), "-o", f"srt://127.0.0.1:{port}?mode=caller{latency}", "-m", "nearest",
                         timeout=120)
        peer.wait(timeout=60)
    finally:
        peer.kill()
    assert result.returncode == 0, result.stderr
    # The whole stream arrives, its end too: vsr's side sends every packet before it hangs up.
    assert len(framemd5(received)) == 50
    assert len(framemd5(received, "a:0", copy=True)) == len(framemd5(clip, "a:0", copy=True))
    assert set(frame_sizes(received)) == {(320, 240)}


def test_srt_to_nobody_fails_in_one_line(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=10)
    port = free_port(socket.SOCK_DGRAM)
    result = run_cli("run", str(clip), "-o", f"srt://127.0.0.1:{port}?mode=caller&passphrase=hidden0123456",
                     "-m", "nearest", "--timeout", "2", timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 3
    assert len(err.strip().splitlines()) == 1 and "hidden0123456" not in err and "passphrase=***" in err


def test_an_srt_output_whose_sender_fails_closes_when_it_exits():
    """close() waits for ffmpeg to take the stream, not for its own limit, once ffmpeg is gone."""
    from vsr.io.transport import FfmpegPipe

    port = free_port(socket.SOCK_DGRAM)
    pipe = FfmpegPipe(f"srt://127.0.0.1:{port}?mode=caller", "w", timeout=1)
    pipe.file.write(b"\x47" + b"\xff" * 187)
    start = time.monotonic()
    error = pipe.close(wait=300)
    # Not a speed figure: a close that waited for its limit would take 300 s.
    assert time.monotonic() - start < 150
    assert error and "timed out" in error.lower()


# -- the picture size changes midway -----------------------------------------------------------

@pytest.mark.parametrize("method", ["bicubic", "misr"])
@pytest.mark.parametrize("resume", [False, True], ids=["whole", "resume"])
def test_a_size_change_midway_keeps_one_output_size(two_sizes, tmp_path, method, resume):
    out = tmp_path / f"{method}.mkv"
    # --resume cuts segments at any frame: one falls on each side of the change, and more.
    segments = ["--resume", "--segment-seconds", "0.2"] if resume else []
    result = run_cli("run", str(two_sizes), "-o", str(out), "-m", method, *segments)
    assert result.returncode == 0, result.stderr
    assert frame_sizes(out) == [(128, 96)] * 20
    pts = [f[0] for f in framemd5(out)]
    assert all(b > a for a, b in itertools.pairwise(pts))


def test_frames_keeps_one_size_where_the_source_changes(two_sizes):
    import vsr

    sizes = {tuple(f.data.shape) for f in vsr.frames(str(two_sizes), method="misr", scale=2, device="cpu")}
    assert sizes == {(3, 96, 128)}


def test_windows_restart_where_the_size_changes():
    import torch

    frames = [Frame(data=torch.zeros(3, *((48, 64) if i < 4 else (64, 96))), pts=i, time_base=1, index=i)
              for i in range(8)]
    for causal in (False, True):
        windows = list(frame_windows(frames, radius=2, causal=causal))
        assert [ref.index for ref, _ in windows] == list(range(8))
        for ref, slots in windows:
            assert {s.data.shape for s in slots} == {ref.data.shape}


# -- truncated and unstreamable files ----------------------------------------------------------

def test_a_truncated_fast_start_mp4_is_refused_unless_accepted(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=36)
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])
    out = tmp_path / "out.mkv"
    refused = run_cli("run", str(cut), "-o", str(out), "-m", "nearest")
    err = refused.stderr.decode()
    assert refused.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "partial file" in err and "--accept-partial" in err
    assert not out.exists()
    held = int(re.search(r"holds (\d+) of 36 frames", err).group(1))
    assert 0 < held < 36
    accepted = run_cli("run", str(cut), "-o", str(out), "-m", "nearest", "--accept-partial")
    assert accepted.returncode == 0, accepted.stderr
    assert b"warning" in accepted.stderr and b"partial file" in accepted.stderr
    assert len(framemd5(out)) == held


def test_an_mp4_on_standard_input_with_its_index_at_the_end_says_what_to_do(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20, faststart=False)
    result = run_cli("run", "-", "-o", str(tmp_path / "out.mkv"), "-m", "nearest", input=clip.read_bytes())
    err = result.stderr.decode()
    assert result.returncode == 2
    assert len(err.strip().splitlines()) == 1
    assert "moov" in err and "at the end" in err and "faststart" in err and "path" in err


def test_a_fast_start_mp4_on_standard_input_works(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "out.mkv"
    result = run_cli("run", "-", "-o", str(out), "-m", "nearest", input=clip.read_bytes())
    assert result.returncode == 0, result.stderr
    assert len(framemd5(out)) == 20


# -- --input-format ----------------------------------------------------------------------------

def test_input_format_forces_the_demuxer(tmp_path):
    out = tmp_path / "out.mkv"
    graph = "testsrc2=size=64x48:rate=25:duration=0.4"
    result = run_cli("run", graph, "--input-format", "lavfi", "-o", str(out), "-m", "nearest")
    assert result.returncode == 0, result.stderr
    assert frame_sizes(out) == [(128, 96)] * 10
    probed = run_cli("probe", graph, "--input-format", "lavfi", "--json")
    assert probed.returncode == 0 and json.loads(probed.stdout)["width"] == 64


def test_input_format_reads_a_raw_stream_it_names(tmp_path):
    raw = tmp_path / "clip.bin"  # an H.264 elementary stream under a name that says nothing
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.4", "-c:v", "libx264", "-f", "h264", str(raw))
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(raw), "--input-format", "h264", "-o", str(out), "-m", "nearest")
    assert result.returncode == 0, result.stderr
    assert len(framemd5(out)) == 10
    wrong = run_cli("run", str(raw), "--input-format", "wav", "-o", str(tmp_path / "x.mkv"), "-m", "nearest")
    assert wrong.returncode == 2 and b"Traceback" not in wrong.stderr


# -- secrets -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown", "hidden"), [
    ("rtsp://admin:p@ss@cam.local/live", "rtsp://admin:***@cam.local/live", "p@ss"),
    ("rtsp://tok3n@cam.local/live", "rtsp://***@cam.local/live", "tok3n"),
    ("srt://h:9000?mode=caller&passphrase=longsecret99", "srt://h:9000?mode=caller&passphrase=***", "longsecret99"),
    ("https://cdn/v.m3u8?token=abc&res=720&X-Amz-Signature=f00d",
     "https://cdn/v.m3u8?token=***&res=720&X-Amz-Signature=***", "f00d"),
    ("http://h/x?password=pw1&passwd=pw2&pass=pw3&key=k&secret=s&auth=a&sig=g",
     "http://h/x?password=***&passwd=***&pass=***&key=***&secret=***&auth=***&sig=***", "pw1"),
    ("rtmp://server/live/sk-12345", "rtmp://server/live/***", "sk-12345"),
    ("rtmps://server:443/app/sk-12345?x=1", "rtmps://server:443/app/***?x=1", "sk-12345"),
    ("rtmp://server/live", "rtmp://server/live", None),
    ("udp://@:1234", "udp://@:1234", None),
    ("file:///videos/in.mp4", "file:///videos/in.mp4", None),
])
def test_mask_url_hides_every_kind_of_secret(url, shown, hidden):
    text = f"cannot open '{url}': Connection refused"
    masked = mask_url(text)
    assert masked == f"cannot open '{shown}': Connection refused"
    if hidden:
        assert hidden not in masked


def test_debug_tracebacks_hide_secrets(tmp_path):
    port = free_port()
    result = run_cli("--debug", "probe", f"rtsp://admin:p@ss@127.0.0.1:{port}/x?token=t0k3n", "--timeout", "2")
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" in err
    assert "p@ss" not in err and "ss@127" not in err and "t0k3n" not in err and "admin:***@127.0.0.1" in err


def test_rtmp_stream_keys_stay_out_of_errors(tmp_path):
    clip = make_mp4(tmp_path / "clip.mp4", frames=10)
    port = free_port()
    result = run_cli("run", str(clip), "-o", f"rtmp://127.0.0.1:{port}/live/streamkey-0123", "-m", "nearest",
                     "--timeout", "2", timeout=120)
    err = result.stderr.decode()
    assert result.returncode != 0 and "streamkey-0123" not in err and "/live/***" in err


def test_secrets_stay_out_of_progress_summary_and_record(tmp_path, http_server):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20)
    server = http_server(clip)
    url = server.url.replace("http://", "http://viewer:pw-0123@") + "?token=tk-0123&quality=hd"
    record = tmp_path / "rec.json"
    result = run_cli("run", url, "-o", str(tmp_path / "out.mkv"), "-m", "nearest", "--json-progress",
                     "--record", str(record))
    assert result.returncode == 0, result.stderr
    text = result.stderr.decode() + record.read_text()
    assert "pw-0123" not in text and "tk-0123" not in text
    assert json.loads(record.read_text())["input"]["source"].endswith("?token=***&quality=hd")


def test_urls_from_the_environment_stay_out_of_the_command_line(tmp_path, http_server):
    clip = make_mp4(tmp_path / "clip.mp4", frames=20)
    server = http_server(clip)
    out = tmp_path / "from_env.mkv"
    env = {"VSR_INPUT_URL": server.url + "?token=env-secret", "VSR_OUTPUT_URL": str(out)}
    result = run_cli("run", "-m", "nearest", env=env)
    assert result.returncode == 0, result.stderr
    assert b"env-secret" not in result.stderr and len(framemd5(out)) == 20
    missing = run_cli("run", "-m", "nearest", env={"VSR_INPUT_URL": ""})
    assert missing.returncode == 2 and b"VSR_INPUT_URL" in missing.stderr
