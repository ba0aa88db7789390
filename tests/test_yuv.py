"""The torch YUV <-> RGB conversion against FFmpeg's scale filter, the path the decoder and
encoder take on the host (``vsr.io.color``): same matrices, ranges, bicubic chroma and chroma
siting, within a rounding or two.

Tolerances, in levels of an 8-bit scale: decoding within 2 at worst and 0.35 on average
(swscale's fixed-point filters differ from float arithmetic by about that; for 10-bit input its
16-bit RGB also puts white about 0.4 % below full scale, 65283 for limited range, where this
conversion reaches 65535); encoding within 1 at worst, 0.6 on average (swscale's full-range
chroma sits half a level below the rounded value; its 10-bit luma a little lower still).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from vsr.errors import ConfigError
from vsr.io.yuv import YuvFormat, rgb_to_yuv, yuv_to_rgb

W, H = 64, 48
_LOC = {"left": 1, "center": 2, "topleft": 3}  # AVChromaLocation
_SUB = {(2, 2): "420", (2, 1): "422", (1, 1): "444"}
CASES = [  # (subsampling, depth, siting, matrix, range)
    ((2, 2), 8, "left", "bt709", "limited"), ((2, 2), 8, "center", "bt601", "full"),
    ((2, 2), 8, "topleft", "bt2020", "limited"), ((2, 2), 10, "left", "bt2020", "limited"),
    ((2, 2), 10, "center", "bt709", "full"), ((2, 1), 8, "left", "bt601", "limited"),
    ((2, 1), 10, "center", "bt709", "limited"), ((1, 1), 8, "left", "bt709", "full"),
    ((1, 1), 10, "left", "bt601", "limited"),
]


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *args]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def _pix_fmt(subsampling, depth: int) -> str:
    return f"yuv{_SUB[subsampling]}p" + ("" if depth == 8 else "10le")


def _planes(subsampling, depth: int) -> list[np.ndarray]:
    """A luma ramp with noise, and chroma with a sharp edge between chroma samples 10 and 11
    (luma column 21 or 22: not on the chroma grid of every siting) and a vertical wave."""
    rng = np.random.default_rng(0)
    peak = (1 << depth) - 1
    sx, sy = subsampling
    xx = np.mgrid[0:H, 0:W][1]
    y = (0.2 + 0.6 * xx / W + 0.05 * rng.random((H, W))) * peak
    cy, cx = np.mgrid[0 : -(-H // sy), 0 : -(-W // sx)]
    u = np.where(cx * sx > 20.5, 0.75, 0.3) * peak + 0.02 * peak * rng.random(cx.shape)
    v = (0.5 + 0.3 * np.sin(cy * sy / 6.0)) * peak
    return [np.clip(np.round(p), 0, peak).astype(np.uint8 if depth == 8 else np.uint16) for p in (y, u, v)]


def _fmt(subsampling, depth, siting, matrix, color_range) -> YuvFormat:
    return YuvFormat(matrix=matrix, full_range=color_range == "full", bit_depth=depth, subsampling=subsampling,
                     siting=siting)


def _decode_reference(planes, subsampling, depth, siting, matrix, color_range) -> np.ndarray:
    """RGB from the ffmpeg binary, as the decoder's scale filter makes it; 8-bit levels."""
    scale = (f"scale=flags=bicubic+full_chroma_int+accurate_rnd:in_color_matrix={matrix}:in_range={color_range}"
             f":in_chroma_loc={_LOC[siting]}")
    out = _ffmpeg(["-f", "rawvideo", "-pix_fmt", _pix_fmt(subsampling, depth), "-s", f"{W}x{H}", "-i", "-",
                   "-vf", scale, "-f", "rawvideo", "-pix_fmt", "rgb24" if depth == 8 else "rgb48le", "-"],
                  b"".join(p.tobytes() for p in planes))
    rgb = np.frombuffer(out, np.uint8 if depth == 8 else np.uint16).reshape(H, W, 3).astype(np.float64)
    return rgb if depth == 8 else rgb / 257


def _to_rgb(planes, fmt: YuvFormat) -> np.ndarray:
    y, u, v = (torch.from_numpy(p.astype(np.int32)) for p in planes)
    return yuv_to_rgb(y, u, v, fmt).permute(1, 2, 0).double().numpy() * 255


@pytest.mark.parametrize("subsampling,depth,siting,matrix,color_range", CASES)
def test_yuv_to_rgb_matches_ffmpegs_scale_filter(subsampling, depth, siting, matrix, color_range):
    planes = _planes(subsampling, depth)
    reference = _decode_reference(planes, subsampling, depth, siting, matrix, color_range)
    error = np.abs(_to_rgb(planes, _fmt(subsampling, depth, siting, matrix, color_range)) - reference)
    assert error.max() <= 2.0 and error.mean() <= 0.35


@pytest.mark.parametrize("siting,wrong", [("left", "center"), ("center", "left"), ("topleft", "left")])
def test_chroma_lands_at_the_streams_siting(siting, wrong):
    """Read at another siting, the colour edge (and the vertical wave) moves by half a pixel:
    far beyond the tolerance, so the match above is the siting's doing."""
    case = ((2, 2), 8, siting, "bt709", "limited")
    planes = _planes(*case[:2])
    reference = _decode_reference(planes, *case)
    right = np.abs(_to_rgb(planes, _fmt(*case)) - reference).max()
    misplaced = np.abs(_to_rgb(planes, _fmt((2, 2), 8, wrong, "bt709", "limited")) - reference).max()
    assert right <= 2.0 < 4 * right < misplaced


def _rgb_picture(depth: int) -> np.ndarray:
    """A colour edge at luma column 21 (between chroma samples), a ramp, a wave, noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([np.where(xx > 20, 0.9, 0.1), 0.2 + 0.6 * yy / H, 0.5 + 0.3 * np.sin(xx / 4.0)], -1)
    peak = 255 if depth == 8 else 65535
    return np.clip(np.round((rgb + 0.03 * rng.random(rgb.shape)) * peak), 0, peak).astype(
        np.uint8 if depth == 8 else np.uint16)


@pytest.mark.parametrize("subsampling,depth,siting,matrix,color_range", CASES)
def test_rgb_to_yuv_matches_ffmpegs_scale_filter(subsampling, depth, siting, matrix, color_range):
    rgb = _rgb_picture(depth)
    scale = (f"scale=flags=bicubic+full_chroma_inp:out_color_matrix={matrix}:out_range={color_range}"
             f":out_chroma_loc={_LOC[siting]}")
    out = _ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24" if depth == 8 else "rgb48le", "-s", f"{W}x{H}", "-i", "-",
                   "-vf", scale, "-f", "rawvideo", "-pix_fmt", _pix_fmt(subsampling, depth), "-"], rgb.tobytes())
    reference = np.frombuffer(out, np.uint8 if depth == 8 else np.uint16).astype(np.float64)
    tensor = torch.from_numpy(rgb.astype(np.int32)).permute(2, 0, 1)
    tensor = tensor.to(torch.uint8) if depth == 8 else tensor.float() / 65535
    planes = rgb_to_yuv(tensor, _fmt(subsampling, depth, siting, matrix, color_range))
    assert planes[0].dtype == (torch.uint8 if depth == 8 else torch.int16)
    mine = np.concatenate([p.numpy().ravel() for p in planes]).astype(np.float64)
    assert mine.shape == reference.shape
    error = np.abs(mine - reference) / (1 << (depth - 8))
    assert error.max() <= 1.0 and error.mean() <= 0.6


@pytest.mark.parametrize("subsampling", [(2, 2), (2, 1), (1, 1)])
def test_round_trip_keeps_the_picture(subsampling):
    fmt = YuvFormat(subsampling=subsampling, siting="center")
    rgb = torch.from_numpy(_rgb_picture(8)).permute(2, 0, 1)
    back = yuv_to_rgb(*rgb_to_yuv(rgb, fmt), fmt) * 255
    error = (back - rgb.float()).abs()
    assert error.mean() < (1.5 if subsampling == (1, 1) else 6)  # chroma resolution is what 4:2:x loses


@pytest.mark.cuda
def test_cuda_gives_what_the_cpu_gives():
    fmt = YuvFormat(matrix="bt709", subsampling=(2, 2), siting="left")
    planes = [torch.from_numpy(p.astype(np.int32)) for p in _planes((2, 2), 8)]
    cpu = yuv_to_rgb(*planes, fmt)
    cuda = yuv_to_rgb(*(p.cuda() for p in planes), fmt)
    assert (cuda.cpu() - cpu).abs().max() < 1e-5
    back = [p.cpu() for p in rgb_to_yuv(cuda, fmt)]
    assert all((a.int() - b.int()).abs().max() <= 1 for a, b in zip(back, rgb_to_yuv(cpu, fmt)))


def test_format_of_a_stream():
    fmt = YuvFormat.of("yuv420p10le", "bt2020", "MPEG", "topleft")
    assert (fmt.matrix, fmt.full_range, fmt.bit_depth, fmt.subsampling, fmt.siting) == (
        "bt2020", False, 10, (2, 2), "topleft")
    assert YuvFormat.of("yuvj422p", "itu601", "MPEG").full_range  # yuvj is full range whatever the tag
    assert YuvFormat.of("yuv444p", "itu709", "JPEG", "unspecified").siting == "left"
    with pytest.raises(ConfigError, match="not planar YUV"):
        YuvFormat.of("nv12", "itu709", "MPEG")
    with pytest.raises(ConfigError, match="matrix"):
        YuvFormat.of("yuv420p", "fcc", "MPEG")
