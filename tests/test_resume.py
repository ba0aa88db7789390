"""--resume: committed segments survive kill -9 and a full disk; the rerun seeks past them and
finishes the same file; one run at a time uses a work directory."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES, framemd5, make_clip, run_cli, start_run

from vsr.engine.manifest import work_dir

CLIP = SAMPLES / "chaplin.mp4"


def _args(out, *extra):
    return ["run", str(CLIP), "-o", str(out), "-m", "bilinear", "-s", "2", "--preset", "ultrafast",
            "--resume", "--segment-seconds", "1", *extra]


def _manifest(out) -> dict:
    return json.loads((work_dir(str(out)) / "manifest.json").read_text())


def _segments(out) -> list[dict]:
    return [_manifest(out)["segments"][k] for k in sorted(_manifest(out)["segments"], key=int)]


def test_kill_9_then_rerun_gives_the_complete_file(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_run(_args(out), 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    committed = _segments(out)
    assert 3 <= len(committed) and sum(s["frames"] for s in committed) < 241

    result = run_cli(*_args(out))
    assert result.returncode == 0, result.stderr.decode()
    assert not work_dir(str(out)).exists()  # cleaned up once complete

    reference = tmp_path / "uninterrupted.mp4"
    assert run_cli(*_args(reference)).returncode == 0
    assert [f[0] for f in framemd5(out)] == [f[0] for f in framemd5(reference)] == [f[0] for f in framemd5(CLIP)]
    assert framemd5(out, "a:0", copy=True) == framemd5(CLIP, "a:0", copy=True)


def test_ctrl_c_with_resume_gives_a_playable_prefix_and_continues(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_run(_args(out), 60)
    proc.send_signal(signal.SIGINT)
    proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    prefix = len(framemd5(out))
    assert 60 <= prefix < 241
    assert run_cli(*_args(out)).returncode == 0
    assert len(framemd5(out)) == 241


def test_input_removed_mid_run_is_a_clear_error_and_keeps_every_segment(tmp_path):
    src = tmp_path / "in.mp4"
    shutil.copy(CLIP, src)
    out = tmp_path / "out.mp4"
    proc = start_run(["run", str(src), *_args(out)[2:]], 60)
    src.unlink()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 2
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "input not found" in lines[0] and "kept in" in lines[0]
    assert not out.exists()
    segments = _segments(out)
    assert sum(s["frames"] for s in segments) >= 48  # each segment reopens the input: those before it are kept
    for segment in segments:
        assert (work_dir(str(out)) / Path(segment["path"]).name).exists()


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def test_full_disk_is_a_clear_error_and_keeps_committed_segments(tmp_path):
    out = tmp_path / "out.mp4"
    result = subprocess.run([sys.executable, "-m", "vsr", *_args(out)], capture_output=True,
                            preexec_fn=_limit_file_size, timeout=300)
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "too large" in err.lower() or "no space" in err.lower() or "failed" in err.lower()
    assert not out.exists()
    segments = _segments(out)
    assert segments
    for segment in segments:
        assert (work_dir(str(out)) / Path(segment["path"]).name).exists()


def test_resume_refuses_a_folder_of_another_job(tmp_path):
    out = tmp_path / "out.mp4"
    folder = work_dir(str(out))
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"job": "something-else", "segments": []}))
    result = run_cli(*_args(out))
    assert result.returncode != 0 and b"other settings" in result.stderr


def test_rerun_seeks_to_the_first_unfinished_segment(tmp_path, monkeypatch):
    from stopping_methods import Explode

    import vsr
    from vsr.engine.segments import scan_stream
    from vsr.io.decode import Decoder

    decoded = []
    real = Decoder._frame
    monkeypatch.setattr(Decoder, "_frame", lambda self, *a: decoded.append(a[1]) or real(self, *a))
    src = make_clip(tmp_path / "in.mp4", frames=100, size=(64, 48), video_options={"g": "25"})
    out = tmp_path / "out.mkv"
    settings = dict(scale=2, encode=vsr.EncodeSettings(codec="ffv1"), resume=True, segment_seconds=0.4)
    with pytest.raises(vsr.PipelineError, match="kept in"):
        vsr.upscale(str(src), str(out), method=Explode(at=70), **settings)
    done = sum(s["frames"] for s in _segments(out))
    assert 50 <= done < 70
    decoded.clear()
    stats = vsr.upscale(str(src), str(out), method=Explode(at=10_000), **settings)
    assert stats.frames_written == 100
    # Decoding began at the keyframe before the first unfinished frame, not at the start.
    first = scan_stream(str(src)).pts[done]
    assert 0 < decoded[0] <= first and first - decoded[0] < 25 * 512
    assert len(decoded) < 100 - done + 25
    reference = tmp_path / "plain.mkv"
    vsr.upscale(str(src), str(reference), method="nearest", scale=2, encode=vsr.EncodeSettings(codec="ffv1"))
    assert framemd5(out) == framemd5(reference)


def test_two_runs_cannot_share_a_work_directory(tmp_path):
    from vsr.engine.manifest import locked

    out = tmp_path / "out.mp4"
    with locked(work_dir(str(out))):  # another run holds it
        result = run_cli(*_args(out))
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert len(err.strip().splitlines()) == 1 and "in use by another vsr run" in err
    assert not out.exists()
    assert run_cli(*_args(out)).returncode == 0  # free again once the other run ends
