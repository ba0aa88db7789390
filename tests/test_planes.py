"""Interpolation on YUV planes: each plane resized at its own resolution and chroma siting.

The references are FFmpeg's: clips made and outputs read back with the ffmpeg binary or PyAV,
and the ffmpeg binary's scale filter resizing the same planes.
"""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest
from conftest import ffmpeg_exe

import vsr
from vsr.io.decode import Decoder
from vsr.io.encode import EncodeSettings
from vsr.io.yuv import PlaneResampler, YuvFormat, pack, unpack

W, H = 128, 96


def _ffmpeg(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], input=input, capture_output=True,
                          check=True).stdout


def _planes(path, fmt: YuvFormat) -> list[list[np.ndarray]]:
    """Every frame's Y, U and V as float arrays, read with PyAV."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray() for f in c.decode(video=0)]
    return [[p.numpy().astype(np.float64) for p in unpack(_torch(f.reshape(-1, f.shape[-1])), fmt)] for f in frames]


def _torch(array):
    import torch

    return torch.from_numpy(array.astype(np.int32))


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv422p", "yuv444p"])
def test_bicubic_resizes_each_plane_as_ffmpeg_scale_does(tmp_path, pix_fmt):
    """vsr's bicubic x2 against the ffmpeg binary's scale filter on the same lossless clip: the
    same planes where the kernel is the same (Keys, a = -0.75), and close to the filter's own
    default kernel (a = -0.6); any shift of half a pixel in luma or chroma would show in both."""
    clip = tmp_path / "colours.mkv"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:d=0.12", "-pix_fmt", pix_fmt, "-c:v", "ffv1", str(clip))
    with Decoder(str(clip)) as dec:
        dec.use_yuv()
        next(iter(dec))
        fmt = dec.yuv  # the siting the decoder reads the source at, as FFmpeg's conversions do
    out = tmp_path / "x2.mkv"
    vsr.upscale(str(clip), str(out), "bicubic", 2, encode=EncodeSettings(codec="ffv1", pix_fmt=pix_fmt))
    ours = _planes(out, fmt)
    assert len(ours) == 3
    peak = (1 << fmt.bit_depth) - 1
    for kernel, worst, least_psnr in (("bicubic:param0=0:param1=0.75", 1, None), ("bicubic", None, 40.0)):
        ref = tmp_path / "ref.mkv"
        _ffmpeg("-i", str(clip), "-vf", f"scale={2 * W}:{2 * H}:flags={kernel}:in_chroma_loc={fmt.siting}"
                f":out_chroma_loc=center", "-pix_fmt", pix_fmt, "-c:v", "ffv1", str(ref))
        for frame, reference in zip(ours, _planes(ref, fmt)):
            for plane, expected in zip(frame, reference):
                assert plane.shape == expected.shape
                if worst is not None:
                    assert np.abs(plane - expected).max() <= worst * (peak // 255)
                else:
                    assert _psnr(plane, expected, peak) > least_psnr


def _crossing(profile: np.ndarray) -> float:
    """Where a rising profile crosses halfway between its ends, by linear interpolation."""
    half = (profile[0] + profile[-1]) / 2
    i = int(np.argmax(profile >= half))
    return i - 1 + (half - profile[i - 1]) / (profile[i] - profile[i - 1])


def _edge_rgb(edge: int) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :edge] = (40, 40, 200)
    rgb[:, edge:] = (220, 200, 30)
    return rgb


def test_a_coloured_sharp_edge_keeps_its_chroma_on_its_luma(tmp_path):
    """A blue/yellow vertical edge through the whole pipeline (real encoders both ways): after x2
    the chroma edge lies where the luma edge lies, in the output's (centred) chroma siting."""
    clip = tmp_path / "edge.mkv"
    edge = 40  # between luma columns 39 and 40: on the 4:2:0 chroma grid's centred boundary
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "25", "-i", "-", "-pix_fmt", "yuv420p",
            "-c:v", "ffv1", str(clip), input=_edge_rgb(edge).tobytes() * 2)
    out = tmp_path / "x2.mkv"
    vsr.upscale(str(clip), str(out), "bicubic", 2, encode=EncodeSettings(codec="ffv1", pix_fmt="yuv420p"))
    y, u, v = _planes(out, YuvFormat(subsampling=(2, 2)))[0]
    luma = _crossing(y[H // 2, 2 * edge - 12 : 2 * edge + 12]) + 2 * edge - 12
    assert luma == pytest.approx(2 * edge - 0.5, abs=0.1)  # the input edge, x2, half-pixel centres
    for chroma in (u, v):
        row = chroma[H // 2, edge - 6 : edge + 6]
        row = row if row[-1] > row[0] else -row
        at = _crossing(row) + edge - 6
        assert 2 * at + 0.5 == pytest.approx(luma, abs=0.2)  # chroma sample k sits at luma 2k + 0.5


def _sigmoid(x: np.ndarray, at: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(x - at) / 1.5))


@pytest.mark.parametrize("siting", ["left", "center", "topleft"])
@pytest.mark.parametrize("depth", [8, 10])
def test_chroma_is_read_at_the_input_siting_and_written_at_the_output_siting(siting, depth):
    """Planes sampled from one smooth edge, chroma at the input's siting: resized x2 to centred
    chroma, luma and chroma cross the edge at the same output position, across and down, and
    reading the input at another siting moves chroma off it."""
    fmt = YuvFormat(subsampling=(2, 2), bit_depth=depth, siting=siting)
    off_x, off_y = fmt.offsets()
    unit = 1 << (depth - 8)
    xs = np.arange(W, dtype=np.float64)
    cx, cy = 2 * np.arange(W // 2) + off_x, 2 * np.arange(H // 2) + off_y
    edge_x, edge_y = 60.3, 45.7
    y = 30 + 180 * _sigmoid(xs, edge_x)[None, :].repeat(H, 0)
    u = 30 + 180 * _sigmoid(cx, edge_x)[None, :].repeat(H // 2, 0)
    v = 30 + 180 * _sigmoid(cy, edge_y)[:, None].repeat(W // 2, 1)
    dtype = np.uint8 if depth == 8 else np.uint16
    packed = pack(*(_torch(np.round(p * unit).astype(dtype)) for p in (y, u, v))).numpy().astype(dtype)
    out_fmt = YuvFormat(subsampling=(2, 2), bit_depth=depth, siting="center")

    def crossings(in_fmt: YuvFormat) -> tuple[float, float, float]:
        out = PlaneResampler("bicubic:param0=0:param1=0.75")(packed, in_fmt, out_fmt, (2 * H, 2 * W))
        assert out.dtype == dtype and out.shape == (3 * H, 2 * W)
        oy, ou, ov = (p.numpy().astype(np.float64) for p in unpack(_torch(out), out_fmt))
        luma = _crossing(oy[H, 80:160]) + 80
        across = 2 * (_crossing(ou[H // 2, 40:80]) + 40) + 0.5  # output chroma k sits at luma 2k + 0.5
        down = 2 * (_crossing(ov[20:70, W // 2]) + 20) + 0.5
        return luma, across, down

    luma, across, down = crossings(fmt)
    assert luma == pytest.approx(2 * edge_x + 0.5, abs=0.1)  # input x -> output 2x + 0.5
    assert across == pytest.approx(luma, abs=0.25)  # a misread siting moves chroma by 1
    assert down == pytest.approx(2 * edge_y + 0.5, abs=0.25)
    other = {"left": "center", "center": "left", "topleft": "center"}[siting]
    _, wrong_across, wrong_down = crossings(YuvFormat(subsampling=(2, 2), bit_depth=depth, siting=other))
    assert max(abs(wrong_across - luma), abs(wrong_down - down)) > 0.8


def test_planes_resample_only_within_one_format():
    fmt = YuvFormat(subsampling=(2, 2))
    planes = np.zeros((3 * 8, 16), np.uint8)
    with pytest.raises(vsr.errors.ConfigError, match="within one format"):
        PlaneResampler("bicubic")(planes, fmt, YuvFormat(subsampling=(1, 1)), (16, 32))
    with pytest.raises(vsr.errors.ConfigError, match="even size"):
        PlaneResampler("bicubic")(planes, fmt, fmt, (15, 32))
