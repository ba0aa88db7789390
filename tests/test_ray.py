"""`--ray`: one job split at keyframes over a local Ray cluster gives the single-process output.

Every comparison is against a plain :func:`vsr.upscale` run of the same input, read back
by the ffmpeg binary (``framemd5``): with the lossless ffv1 encoder the decoded pixels,
the pts and the durations of every frame must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ffmpeg_exe, framemd5, make_clip, picture, run_cli

ray = pytest.importorskip("ray")

import vsr  # noqa: E402
from vsr.distributed import run_on_ray  # noqa: E402
from vsr.engine.manifest import MANIFEST_NAME, Manifest, work_dir  # noqa: E402
from vsr.engine.segments import plan_segments, scan_stream  # noqa: E402
from vsr.errors import Cancelled, ConfigError  # noqa: E402
from vsr.methods.base import Method  # noqa: E402

FFV1 = vsr.EncodeSettings(codec="ffv1")
SEGMENT_SECONDS = 0.4  # 10 frames at 25 fps: one keyframe interval of the clips below


@pytest.fixture(scope="module", autouse=True)
def cluster():
    # Test methods live in this module, which the workers cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _nearest(image, scale: int):
    import torch.nn.functional as F

    return F.interpolate(image[None], scale_factor=scale, mode="nearest")[0]


class WeightedWindow(Method):
    """Weighted mean of a 5-frame window, then nearest x2: every slot and its order show in the output."""

    name = "weighted-window"
    scale = 2
    radius = 2

    def __call__(self, frames, ref):
        import torch

        weights = torch.arange(1, frames.shape[0] + 1, dtype=frames.dtype).view(-1, 1, 1, 1)
        return _nearest((frames * weights).sum(0) / weights.sum(), self.scale)


class CrashOnce(Method):
    """Nearest x2 whose first call anywhere in the cluster kills its worker process, or
    with ``raises`` raises a Python exception."""

    name = "crash-once"
    scale = 2

    def __init__(self, marker: str, raises: bool = False) -> None:
        super().__init__()
        self.marker = marker
        self.raises = raises

    def __call__(self, frames, ref):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return _nearest(frames[ref], self.scale)
        os.close(fd)
        if self.raises:
            raise RuntimeError("a transient failure")
        os._exit(1)


class Logged(Method):
    """Nearest x2 that appends one line per frame it upscales to ``log``."""

    name = "logged"
    scale = 2

    def __init__(self, log: str) -> None:
        super().__init__()
        self.log = log

    def __call__(self, frames, ref):
        with open(self.log, "a") as f:
            f.write("x\n")
        return _nearest(frames[ref], self.scale)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "scale": self.scale}  # the log path does not change the output


def _clip(path: Path, frames: int = 45, cut_at: int | None = None) -> Path:
    pictures = None
    if cut_at is not None:
        # A second shot: the same texture much darker, so the detector sees a cut.
        pictures = [picture(i, 64, 48) if i < cut_at else (picture(i, 64, 48) // 5).astype(np.uint8)
                    for i in range(frames)]
    return make_clip(path, frames=frames, size=(64, 48), video_options={"g": "10"}, pictures=pictures)


def test_plan_covers_every_frame_once_and_starts_segments_at_keyframes(tmp_path):
    scan = scan_stream(str(_clip(tmp_path / "in.mp4")))
    segments = plan_segments(scan, SEGMENT_SECONDS, 2, 2)
    assert len(segments) >= 4
    assert sum(s.frames for s in segments) == len(scan.pts) == 45
    assert all(s.first_pts in scan.keyframes for s in segments)
    for a, b in zip(segments, segments[1:]):
        assert scan.pts.index(b.first_pts) == scan.pts.index(a.last_pts) + 1
        assert scan.pts.index(b.context_first_pts) == scan.pts.index(b.first_pts) - 2
        assert scan.pts.index(a.context_last_pts) == scan.pts.index(a.last_pts) + 2
        assert b.seek_pts is not None and b.seek_pts <= b.context_first_pts
    assert segments[0].seek_pts is None


def test_bicubic_on_ray_equals_single_process(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="bicubic", scale=2, encode=FFV1)
    seen = []
    stats = run_on_ray(str(src), str(distributed), method="bicubic", scale=2, encode=FFV1,
                       segment_seconds=SEGMENT_SECONDS, on_progress=lambda s: seen.append(s.frames_written))
    assert stats.queues["segments"][1] >= 4
    assert seen == sorted(seen) and seen[-1] == 45
    assert stats.frames_written == 45
    assert framemd5(distributed) == framemd5(single)  # pts, durations and pixels of every frame
    assert framemd5(distributed, "a:0", copy=True) == framemd5(single, "a:0", copy=True)
    assert not work_dir(distributed).exists()


def test_windowed_method_sees_the_same_neighbours_and_cuts_as_single_process(tmp_path):
    # The cut falls one frame after a segment start, so the windows there depend on both
    # the context frames and the detector state carried through them.
    src = _clip(tmp_path / "in.mp4", cut_at=21)
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    plain = vsr.upscale(str(src), str(single), method=WeightedWindow(), encode=FFV1)
    assert plain.scene_cuts == 1
    stats = run_on_ray(str(src), str(distributed), method=WeightedWindow(), encode=FFV1,
                       segment_seconds=SEGMENT_SECONDS)
    assert stats.scene_cuts == 1
    assert stats.frames_decoded > stats.frames_written  # context frames were decoded
    assert framemd5(distributed) == framemd5(single)


def test_misr_on_ray_equals_single_process(tmp_path):
    pytest.importorskip("vsr.methods.misr.method")
    src = _clip(tmp_path / "in.mp4", frames=25, cut_at=11)
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="misr", scale=2, encode=FFV1, device="cpu")
    run_on_ray(str(src), str(distributed), method="misr", scale=2, encode=FFV1, device="cpu",
               segment_seconds=SEGMENT_SECONDS)
    assert framemd5(distributed) == framemd5(single)


def test_x264_mp4_keeps_every_pts_and_the_audio_packets(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    single, distributed = tmp_path / "single.mp4", tmp_path / "ray.mp4"
    vsr.upscale(str(src), str(single), method="bilinear", scale=2)
    run_on_ray(str(src), str(distributed), method="bilinear", scale=2, segment_seconds=SEGMENT_SECONDS)
    pts = [f[0] for f in framemd5(distributed)]
    assert pts == [f[0] for f in framemd5(single)] == [f[0] for f in framemd5(src)]
    assert framemd5(distributed, "a:0", copy=True) == framemd5(src, "a:0", copy=True)


def test_a_worker_killed_mid_segment_is_retried(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    marker = tmp_path / "crashed"
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="nearest", scale=2, encode=FFV1)
    stats = run_on_ray(str(src), str(distributed), method=CrashOnce(str(marker)), encode=FFV1,
                       segment_seconds=SEGMENT_SECONDS, max_retries=2)
    assert marker.exists()  # a worker did die
    assert stats.frames_written == 45
    assert framemd5(distributed) == framemd5(single)


def test_rerun_resumes_from_the_segments_already_done(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    log = tmp_path / "calls.log"
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="nearest", scale=2, encode=FFV1)

    def stop_after_two(stats):
        if stats.queues["segments"][0] >= 2:
            raise KeyboardInterrupt

    with pytest.raises(Cancelled):
        run_on_ray(str(src), str(distributed), method=Logged(str(log)), encode=FFV1,
                   segment_seconds=SEGMENT_SECONDS, on_progress=stop_after_two)
    folder = work_dir(distributed)
    assert (folder / MANIFEST_NAME).exists() and not distributed.exists()
    job = json.loads((folder / MANIFEST_NAME).read_text())["job"]
    done = Manifest.load(folder, job).segments
    assert len(done) >= 2
    # A damaged segment file fails its checksum and is made again.
    damaged = min(done)
    with open(done[damaged].path, "ab") as f:
        f.write(b"\0")
    kept_frames = sum(r.frames for i, r in done.items() if i != damaged)

    log.unlink()
    stats = run_on_ray(str(src), str(distributed), method=Logged(str(log)), encode=FFV1,
                       segment_seconds=SEGMENT_SECONDS)
    assert len(log.read_text().splitlines()) == 45 - kept_frames
    assert stats.frames_written == 45
    assert framemd5(distributed) == framemd5(single)


def test_missing_ray_is_a_one_line_config_error(tmp_path, monkeypatch):
    src = _clip(tmp_path / "in.mp4", frames=10)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'vsr\[ray\]'"):
        run_on_ray(str(src), str(tmp_path / "out.mkv"), method="nearest", address="local")


def test_cli_without_ray_says_how_to_install_it(tmp_path):
    src = _clip(tmp_path / "in.mp4", frames=10)
    hidden = tmp_path / "no_ray"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    result = run_cli("run", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "nearest", "--ray", "auto",
                     env={"PYTHONPATH": str(hidden)})
    assert result.returncode == ConfigError.exit_code
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "pip install 'vsr[ray]'" in lines[0]


def test_cli_refuses_live_with_ray(tmp_path):
    src = _clip(tmp_path / "in.mp4", frames=10)
    result = run_cli("run", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "nearest", "--ray", "auto", "--live")
    assert result.returncode == ConfigError.exit_code
    assert "--live and --ray" in result.stderr.decode()


def test_cli_joins_the_running_cluster_and_reports_progress(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="bicubic", scale=2, encode=FFV1)
    address = ray.get_runtime_context().gcs_address  # this module's cluster, by its host:port
    result = run_cli("run", str(src), "-o", str(distributed), "-m", "bicubic", "--codec", "ffv1", "--ray", address,
                     "--segment-seconds", str(SEGMENT_SECONDS), "--json-progress")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    updates = [json.loads(line) for line in result.stderr.decode().splitlines() if line.startswith("{")]
    assert updates[-1]["frames"] == updates[-1]["total"] == 45
    segments = updates[-1]["queues"]["segments"]
    assert segments["items"] == segments["capacity"] >= 4
    assert framemd5(distributed) == framemd5(single)


def test_cuda_on_a_cluster_without_gpus_is_a_config_error(tmp_path):
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this cluster has GPUs")
    src = _clip(tmp_path / "in.mp4", frames=10)
    with pytest.raises(ConfigError, match="no GPU"):
        run_on_ray(str(src), str(tmp_path / "out.mkv"), method="nearest", device="cuda")


def test_display_rotation_comes_through(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=25, size=(64, 48), rotation=90, video_options={"g": "10"})
    out = tmp_path / "ray.mkv"
    run_on_ray(str(src), str(out), method="nearest", encode=FFV1, segment_seconds=SEGMENT_SECONDS)
    described = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "rotation of 90.00 degrees" in described


class BadInput(Logged):
    """Logs each call, then fails as a bad input would: a rerun would fail the same way."""

    name = "bad-input"

    def __call__(self, frames, ref):
        from vsr.errors import InputError

        super().__call__(frames, ref)
        raise InputError("this input cannot be upscaled")


def test_a_python_exception_in_a_task_is_retried(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    marker = tmp_path / "raised"
    single, distributed = tmp_path / "single.mkv", tmp_path / "ray.mkv"
    vsr.upscale(str(src), str(single), method="nearest", scale=2, encode=FFV1)
    stats = run_on_ray(str(src), str(distributed), method=CrashOnce(str(marker), raises=True), encode=FFV1,
                       segment_seconds=SEGMENT_SECONDS, max_retries=2)
    assert marker.exists()  # a task did raise
    assert stats.frames_written == 45
    assert framemd5(distributed) == framemd5(single)


def test_an_error_a_rerun_would_repeat_is_not_retried(tmp_path):
    src = _clip(tmp_path / "in.mp4", frames=10)
    log = tmp_path / "calls.log"
    with pytest.raises(vsr.InputError, match="cannot be upscaled"):
        run_on_ray(str(src), str(tmp_path / "ray.mkv"), method=BadInput(str(log)), encode=FFV1,
                   segment_seconds=100, max_retries=3)
    assert len(log.read_text().splitlines()) == 1


class _Cluster:
    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def cluster_resources(self) -> dict:
        return {"CPU": 8, "GPU": self.gpus}


@pytest.mark.parametrize("method,device,gpus,wanted", [
    ("bicubic", "auto", 2, 0),  # interpolation never reserves a GPU on its own
    ("misr", "auto", 2, 1),
    ("misr", "auto", 0, 0),
    ("misr", "cpu", 2, 0),
    ("bicubic", "cuda", 2, 1),  # a named device is honoured
])
def test_tasks_ask_for_a_gpu_only_when_the_method_uses_one(method, device, gpus, wanted):
    from vsr.methods.build import build_method
    from vsr.distributed.ray_runner import gpus_per_task

    built = build_method(method, 2, {}, "cpu")
    assert gpus_per_task(_Cluster(gpus), device, built.wants_gpu) == wanted


def test_roi_on_ray_writes_a_record(tmp_path):
    src = _clip(tmp_path / "in.mp4")
    out = tmp_path / "plate.mkv"
    result = run_cli("run", str(src), "-o", str(out), "-m", "nearest", "--codec", "ffv1", "--roi", "8,8,32,24",
                     "--ray", ray.get_runtime_context().gcs_address, "--segment-seconds", str(SEGMENT_SECONDS))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    record = json.loads((tmp_path / "plate.mkv.json").read_text())
    assert record["roi"] == {"x": 8, "y": 8, "w": 32, "h": 24}
    assert record["frames"]["written"] == 45
    assert record["output"]["sha256"] and record["input"]["sha256"]


@pytest.mark.parametrize("how", ["ray", "resume"])
def test_an_accepted_partial_file_gives_the_frames_it_holds(tmp_path, how):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1.44", "-c:v",
                    "libx264", "-preset", "ultrafast", "-movflags", "+faststart", str(clip)], check=True)
    cut = tmp_path / "cut.mp4"  # its index describes 36 frames, its data holds a few
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size * 3 // 10])
    whole = tmp_path / "whole.mkv"
    assert run_cli("run", str(cut), "-o", str(whole), "-m", "nearest", "--codec", "ffv1",
                   "--accept-partial").returncode == 0
    held = framemd5(whole)
    assert 0 < len(held) < 36
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(cut), "-o", str(out), "-m", "nearest", "--codec", "ffv1", "--accept-partial",
                     "--segment-seconds", "0.1",
                     *(["--ray", "auto"] if how == "ray" else ["--resume"]))
    assert result.returncode == 0, result.stderr.decode()
    assert framemd5(out) == held


def test_a_size_change_midway_keeps_one_output_size_on_ray(two_sizes, tmp_path):
    out = tmp_path / "ray.mkv"  # Matroska stores no decode times: the join infers them
    stats = run_on_ray(str(two_sizes), str(out), method="bicubic", scale=2, segment_seconds=SEGMENT_SECONDS / 2)
    assert stats.frames_written == 20
    with av.open(str(out)) as c:
        assert [(f.width, f.height) for f in c.decode(video=0)] == [(128, 96)] * 20
    whole = tmp_path / "whole.mkv"
    vsr.upscale(str(two_sizes), str(whole), method="bicubic", scale=2)
    assert [f[0] for f in framemd5(out)] == [f[0] for f in framemd5(whole)]
