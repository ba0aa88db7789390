"""Stopping and failing keep work: a failure keeps the frames done, interruptions never abort.

Failures and slow steps are injected into real runs of the ``vsr`` command with the
methods of ``stopping_methods.py``; signals are real signals to a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading

import pytest
from conftest import SAMPLES, framemd5, make_clip
from stopping_methods import COMMAND, Crawl, Explode

import vsr
from vsr.engine.manifest import work_dir

CLIP = SAMPLES / "chaplin.mp4"


def _vsr(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _progress_until(proc: subprocess.Popen, done) -> list[str]:
    """Read ``--json-progress`` lines until ``done(update)``; returns the other lines seen."""
    other = []
    for line in proc.stderr:
        try:
            update = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if done(update):
            return other
    raise AssertionError(f"the run ended first: rc={proc.wait()} {other}")


def _leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_a_failing_method_keeps_the_frames_done_as_a_playable_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(vsr.PipelineError, match=r"boom at frame 5; the 4 frames done are kept in .*out\.partial\.mp4"):
        vsr.upscale(str(CLIP), str(out), method=Explode(at=5), queue_size=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("vsr-")]
    assert _leftovers(tmp_path) == ["out.partial.mp4"]
    kept = tmp_path / "out.partial.mp4"
    assert [f[0] for f in framemd5(kept)] == [f[0] for f in framemd5(CLIP)][:4]
    assert framemd5(kept, "a:0", copy=True)  # the audio up to there came along


def test_cli_failure_mid_run_is_one_line_and_keeps_the_frames_done(tmp_path):
    out = tmp_path / "out.mkv"
    proc = _vsr("run", str(CLIP), "-o", str(out), "-m", "explode", "--param", "at=30", "--preset", "ultrafast")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "boom at frame 30" in lines[0] and "out.partial.mkv" in lines[0]
    assert _leftovers(tmp_path) == ["out.partial.mkv"]
    assert len(framemd5(tmp_path / "out.partial.mkv")) == 29


def test_failure_with_resume_keeps_the_segments_and_the_rerun_finishes(tmp_path):
    out = tmp_path / "out.mp4"
    common = ["run", str(CLIP), "-o", str(out), "-m", "explode", "--preset", "ultrafast", "--resume",
              "--segment-seconds", "1"]
    proc = _vsr(*common, env={**os.environ, "EXPLODE_AT": "80"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert len(err.strip().splitlines()) == 1 and "kept in" in err and work_dir(str(out)).name in err, err
    assert not out.exists()
    proc = _vsr(*common, env={**os.environ, "EXPLODE_AT": "100000"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [f[0] for f in framemd5(out)] == [f[0] for f in framemd5(CLIP)]


def test_second_interrupt_during_a_slow_method_closes_the_output_with_its_audio(tmp_path):
    out = tmp_path / "out.mp4"
    proc = _vsr("run", str(CLIP), "-o", str(out), "-m", "crawl", "--param", "seconds=1.5", "--preset", "ultrafast",
                "--json-progress")
    _progress_until(proc, lambda u: u["frames"] >= 2)
    proc.send_signal(signal.SIGINT)
    said = _progress_until(proc, lambda u: u["cancelled"])
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    text = "".join(said) + rest
    assert "stopping: finishing the" in text and "stopping now" in text, text
    assert "Traceback" not in text and "terminate" not in text
    assert len(framemd5(out)) >= 2
    assert framemd5(out, "a:0", copy=True)
    assert _leftovers(tmp_path) == ["out.mp4"]


def test_the_wait_for_frames_in_flight_is_bounded(tmp_path):
    out = tmp_path / "out.mkv"
    notices: list[str] = []

    def on_start(pipeline):
        pipeline.grace = 0.5
        pipeline.on_notice = notices.append

    def on_progress(stats):
        if stats.frames_written >= 1 and not stats.cancelled:
            pipelines[0].cancel()

    pipelines: list = []
    with pytest.raises(vsr.Cancelled):
        vsr.upscale(str(CLIP), str(out), method=Crawl(seconds=0.4), queue_size=6,
                    on_start=lambda p: (pipelines.append(p), on_start(p)), on_progress=on_progress)
    stats = pipelines[0].stats
    assert any("did not finish within 0.5 s" in n for n in notices), notices
    assert 1 <= stats.frames_written < stats.frames_decoded  # frames in flight were dropped
    assert len(framemd5(out)) == stats.frames_written


def test_a_progress_reader_that_goes_away_does_not_stop_the_run(tmp_path):
    out = tmp_path / "out.mp4"
    proc = _vsr("run", str(CLIP), "-o", str(out), "-m", "nearest", "--preset", "ultrafast", "--json-progress")
    proc.stderr.readline()
    proc.stderr.close()
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    assert len(framemd5(out)) == len(framemd5(CLIP))
    assert _leftovers(tmp_path) == ["out.mp4"]


def test_interrupt_after_the_last_frame_is_decoded_gives_a_complete_output_and_exit_0(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out.mp4"
    proc = _vsr("run", str(src), "-o", str(out), "-m", "crawl", "--param", "seconds=0.3", "--queue-size", "16",
                "--json-progress")
    _progress_until(proc, lambda u: u["decoded"] == 12)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, rest
    assert len(framemd5(out)) == 12
