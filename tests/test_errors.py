"""Bad input and interruptions: one clear line, a non-zero exit, nothing half-written left behind."""

from __future__ import annotations

import signal
import threading
import time

import av
import pytest
from conftest import SAMPLES, framemd5, make_clip, run_cli, start_run

import vsr


def _assert_clean_failure(result, tmp_path, needle: str) -> None:
    err = result.stderr.decode()
    assert result.returncode not in (0, None)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def _audio_only(path):
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        import numpy as np

        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            for p in a.encode(frame):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize("kind,needle", [
    ("missing", "not found"),
    ("directory", "directory"),
    ("empty", "empty"),
    ("text", "not a media file"),
    ("truncated", "truncated"),
    ("audio_only", "no video stream"),
])
def test_bad_inputs(tmp_path, kind, needle):
    src = tmp_path / f"in_{kind}.mp4"
    if kind == "directory":
        src.mkdir()
    elif kind == "empty":
        src.write_bytes(b"")
    elif kind == "text":
        src.write_text("this is not a video\n")
    elif kind == "truncated":
        src.write_bytes((SAMPLES / "chaplin.mp4").read_bytes()[:50_000])
    elif kind == "audio_only":
        _audio_only(src)
    before = src.read_bytes() if src.is_file() else None
    result = run_cli("run", str(src), "-o", str(tmp_path / "out.mp4"), "-m", "bicubic")
    _assert_clean_failure(result, tmp_path, needle)
    if before is not None:
        assert src.read_bytes() == before  # the input is never touched


def test_output_equal_to_input_is_refused(tmp_path):
    src = tmp_path / "same.mp4"
    src.write_bytes((SAMPLES / "vfr_audio.mp4").read_bytes())
    before = src.read_bytes()
    result = run_cli("run", str(src), "-o", str(src), "-m", "bicubic", "--overwrite")
    assert result.returncode != 0 and b"is the input" in result.stderr
    assert src.read_bytes() == before


@pytest.mark.parametrize("args,needle", [
    (["-m", "nope"], "unknown method"),
    (["-m", "bicubic", "-s", "9"], "--scale"),
    (["-m", "bicubic", "--codec", "libnothing"], "not in this FFmpeg build"),
    (["-m", "bicubic", "--codec", "ffv1", "--crf", "10"], "lossless"),
    (["-m", "bicubic", "--roi", "0,0,5000,10"], "outside"),
    (["-m", "bicubic", "--pipeline", "no-such-preset"], "not found"),
])
def test_bad_options(tmp_path, args, needle):
    result = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(tmp_path / "out.mp4"), *args)
    _assert_clean_failure(result, tmp_path, needle)


def test_unwritable_output_folder(tmp_path):
    result = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(tmp_path / "missing" / "out.mp4"))
    assert result.returncode != 0 and b"does not exist" in result.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_a_playable_prefix(tmp_path, sig, code):
    out = tmp_path / "out.mp4"
    proc = start_run(
        ["run", str(SAMPLES / "chaplin.mp4"), "-o", str(out), "-m", "lanczos", "-s", "3", "--preset", "slow"], 10)
    proc.send_signal(sig)
    proc.stderr.read()
    assert proc.wait(timeout=120) == code
    frames = framemd5(out)
    total = len(framemd5(SAMPLES / "chaplin.mp4"))
    assert 10 <= len(frames) < total
    with av.open(str(out)) as c:  # PyAV reads it to the end too
        assert sum(1 for _ in c.decode(video=0)) == len(frames)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_interrupt_of_the_api_raises_cancelled(tmp_path):
    out = tmp_path / "out.mp4"
    pipelines = []
    timer = threading.Timer(1.0, lambda: pipelines[0].cancel())
    timer.start()
    with pytest.raises(vsr.Cancelled):
        vsr.upscale(str(SAMPLES / "chaplin.mp4"), str(out), method="lanczos", scale=3,
                    encode=vsr.EncodeSettings(preset="slow"), on_start=pipelines.append)
    assert 0 < len(framemd5(out)) < 241
    assert not [t for t in threading.enumerate() if t.name.startswith("vsr-")]


def test_no_partial_file_while_running_has_the_final_name(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_run(["run", str(SAMPLES / "chaplin.mp4"), "-o", str(out), "-m", "bicubic"], 3)
    try:
        assert not out.exists()
        assert any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())
    finally:
        proc.kill()
        proc.wait()
        time.sleep(0.1)
    assert not out.exists()  # a killed run leaves only the hidden partial file, never `out.mp4`


def test_make_clip_helper_writes_what_it_says(tmp_path):
    path = make_clip(tmp_path / "c.mp4", frames=7, size=(32, 32))
    assert len(framemd5(path)) == 7
