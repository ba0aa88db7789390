"""Shared fixtures: sample paths, clip generators, the CLI runner and the ffmpeg oracle.

Every synthetic clip is generated here with PyAV from numpy pictures and tones, so each
test states exactly what its input holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is visible to torch")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> str:
    """Runs a test on the CPU, and on CUDA where a device is present."""
    return request.param


def shared(relative: str) -> Path:
    """A file of ../shared/data; skips the test when the shared data is not beside the repo."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def framemd5(path: Path | str, stream: str = "v:0", copy: bool = False) -> list[tuple[int, int, int, str]]:
    """Per frame (or per packet with ``copy``): ``(pts, duration, size, md5)`` as the ffmpeg binary sees it.

    This is the independent oracle: FFmpeg's own command line, not PyAV, reads the file.
    """
    import ffmpeg

    args = {"map": f"0:{stream}", "format": "framemd5"}
    if copy:
        args["c"] = "copy"
    cmd = ffmpeg.input(str(path)).output("-", **args).global_args("-v", "error").compile(cmd=ffmpeg_exe())
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, _dts, pts, duration, size, md5 = (part.strip() for part in line.split(",")[:6])
        rows.append((int(pts), int(duration), int(size), md5))
    return rows


def ffmpeg_stream_line(path: Path | str, index: int) -> str:
    """The ``Stream #0:N`` line the ffmpeg binary prints for a file."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    for line in out.splitlines():
        if f"Stream #0:{index}" in line:
            return line
    raise AssertionError(f"no stream {index} in ffmpeg's description of {path}:\n{out}")


def picture(i: int, width: int, height: int, depth: int = 8) -> np.ndarray:
    """A moving, textured RGB test picture ``(H, W, 3)``: uint8, or uint16 for depth > 8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.5 * np.sin((x + 3 * i) / 7.0)
    g = 0.5 + 0.5 * np.cos((y - 2 * i) / 5.0)
    b = ((x // 8 + y // 8 + i) % 2).astype(np.float32) * 0.8 + 0.1
    rgb = np.stack([r, g, b], axis=-1)
    if depth <= 8:
        return (rgb * 255).round().astype(np.uint8)
    return (rgb * 65535).round().astype(np.uint16)


def make_clip(
    path: Path,
    *,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = True,
    rotation: int = 0,
    color: dict | None = None,
    pictures=None,
    video_options: dict[str, str] | None = None,
) -> Path:
    """Write a clip with PyAV: ``frames`` pictures, optional AAC tone, VFR via explicit ``pts``.

    ``video_options`` are extra encoder options (e.g. ``{"g": "10"}`` for a keyframe every 10 frames).
    """
    import av

    width, height = size
    depth = 10 if "10" in pix_fmt else 8
    time_base = time_base or Fraction(1, rate * 512)
    with av.open(str(path), "w") as out:
        options = {"preset": "ultrafast", "crf": "12"} if codec == "libx264" else {}
        v = out.add_stream(codec, rate=rate, options={**options, **(video_options or {})})
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.time_base = time_base
        v.codec_context.time_base = time_base
        v.codec_context.thread_type = "FRAME"
        if color:
            for key, value in color.items():
                setattr(v.codec_context, key, value)
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "mono"
        step = int(1 / (rate * time_base))
        stamps = pts if pts is not None else [i * step for i in range(frames)]
        for i, stamp in enumerate(stamps):
            rgb = pictures[i] if pictures is not None else picture(i, width, height, depth)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24" if rgb.dtype == np.uint8 else "rgb48le")
            kwargs = {}
            if color:
                kwargs = {"dst_colorspace": {1: "itu709", 5: "itu601", 6: "smpte170m"}.get(color.get("colorspace", 1)),
                          "dst_color_range": "JPEG" if color.get("color_range") == 2 else "MPEG"}
            frame = frame.reformat(format=pix_fmt, **kwargs)
            if color:
                for key, value in color.items():
                    setattr(frame, key, value)
            frame.pts = stamp
            frame.time_base = time_base
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        if a is not None:
            duration = (stamps[-1] + step) * time_base
            samples = int(48000 * duration)
            t = np.arange(samples, dtype=np.float32) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            chunk = 1024
            for start in range(0, samples, chunk):
                af = av.AudioFrame.from_ndarray(tone[:, start : start + chunk], format="fltp", layout="mono")
                af.sample_rate = 48000
                af.pts = start
                for packet in a.encode(af):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)
    return path


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None, input: bytes | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m vsr ARGS`` in a child process, capturing its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "vsr", *args], capture_output=True, timeout=timeout,
                          cwd=cwd, input=input, env=full_env)


def start_run(args, frames: int) -> subprocess.Popen:
    """Start ``vsr ARGS --json-progress`` and return once ``frames`` frames are written."""
    import json

    proc = subprocess.Popen([sys.executable, "-m", "vsr", *args, "--json-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        try:
            if json.loads(line)["frames"] >= frames:
                return proc
        except (ValueError, KeyError):
            continue
    raise AssertionError(f"run ended before {frames} frames: rc={proc.wait()}")


@pytest.fixture
def clip_factory(tmp_path):
    """``clip_factory(name, **make_clip kwargs)`` → path of a freshly generated clip."""

    def factory(name: str = "clip.mp4", **kwargs) -> Path:
        return make_clip(tmp_path / name, **kwargs)

    return factory


@pytest.fixture
def two_sizes(tmp_path) -> Path:
    """MPEG-TS whose picture goes from 64x48 to 96x64 after 10 of its 20 frames (as an adaptive stream does)."""
    import av

    first, second, both = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "two_sizes.ts"
    for path, size, offset in ((first, "64x48", "0"), (second, "96x64", "0.4")):
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d=0.4", "-c:v",
                        "libx264", "-bf", "0", "-pix_fmt", "yuv420p", "-output_ts_offset", offset, str(path)],
                       check=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", f"concat:{first}|{second}", "-c", "copy", str(both)], check=True)
    with av.open(str(both)) as c:
        assert sorted({(f.width, f.height) for f in c.decode(video=0)}) == [(64, 48), (96, 64)]
    return both
