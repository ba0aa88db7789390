"""--resume: committed segments survive kill -9 and a full disk; the rerun finishes the same file."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys

from conftest import SAMPLES, framemd5, run_cli, start_run

from vsr.io.resume import resume_dir

CLIP = SAMPLES / "chaplin.mp4"


def _args(out, *extra):
    return ["run", str(CLIP), "-o", str(out), "-m", "bilinear", "-s", "2", "--preset", "ultrafast",
            "--resume", "--segment-seconds", "1", *extra]


def _manifest(out) -> dict:
    return json.loads((resume_dir(str(out)) / "manifest.json").read_text())


def test_kill_9_then_rerun_gives_the_complete_file(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_run(_args(out), 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    committed = _manifest(out)["segments"]
    assert 3 <= len(committed) and sum(s["frames"] for s in committed) < 241

    result = run_cli(*_args(out))
    assert result.returncode == 0, result.stderr.decode()
    assert not resume_dir(str(out)).exists()  # cleaned up once complete

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
    segments = _manifest(out)["segments"]
    assert sum(s["frames"] for s in segments) == 241  # every frame was upscaled before the audio copy
    for segment in segments:
        assert (resume_dir(str(out)) / segment["file"]).exists()


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
    segments = _manifest(out)["segments"]
    assert segments
    for segment in segments:
        assert (resume_dir(str(out)) / segment["file"]).exists()


def test_resume_refuses_a_folder_of_another_job(tmp_path):
    out = tmp_path / "out.mp4"
    folder = resume_dir(str(out))
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"job": "something-else", "segments": []}))
    result = run_cli(*_args(out))
    assert result.returncode != 0 and b"other settings" in result.stderr
