"""The evaluation protocol: MATLAB-compatible bicubic, BD degradation, Y metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsr.quality import (
    compress,
    degrade_bd,
    imresize,
    non_occluded,
    psnr_y,
    rgb_to_y,
    ssim_y,
    still_change,
    still_mask,
    temporal_error_change,
    tof,
    vmaf,
    warping_error,
)

VID4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "vid4"


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


@pytest.mark.skipif(not (VID4 / "calendar_BIx4_matlab").is_dir(), reason="needs ../shared/data/vid4")
@pytest.mark.parametrize("frame", ["001.png", "029.png"])
def test_imresize_matches_matlab_bicubic_shrink(frame):
    gt = read_rgb(VID4 / "GT" / "calendar" / frame)
    reference = read_rgb(VID4 / "calendar_BIx4_matlab" / frame)
    ours = imresize(gt, 0.25)
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours, reference)


def test_imresize_shapes_and_constants():
    flat = np.full((12, 18, 3), 77, np.uint8)
    assert imresize(flat, 0.5).shape == (6, 9, 3)
    assert (imresize(flat, 1 / 3) == 77).all()
    assert (imresize(flat, 3.0) == 77).all()
    assert imresize(flat, size=(7, 5)).shape == (7, 5, 3)
    assert imresize(flat.astype(np.float64), 2.0).dtype == np.float64
    with pytest.raises(ValueError):
        imresize(flat)


def test_imresize_upscale_interpolates_a_ramp_exactly():
    ramp = np.tile(np.arange(16, dtype=np.float64), (16, 1))
    up = imresize(ramp, 2.0)
    # Cubic convolution reproduces linear functions away from the border.
    expected = (np.arange(32) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[8, 4:-4], expected[4:-4], atol=1e-12)


def test_degrade_bd_takes_every_fourth_pixel_of_the_blur():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    low = degrade_bd(image, 4)
    assert low.shape == (10, 12, 3) and low.dtype == np.uint8
    assert (degrade_bd(np.full((40, 48), 200, np.uint8), 4) == 200).all()


def test_y_of_black_and_white():
    assert rgb_to_y(np.zeros((1, 1, 3))) == pytest.approx(16.0)
    assert rgb_to_y(np.full((1, 1, 3), 255.0)) == pytest.approx(235.0)


def test_psnr_and_ssim():
    rng = np.random.default_rng(1)
    y = rng.uniform(16, 235, (48, 48))
    assert psnr_y(y, y) == float("inf")
    assert psnr_y(y + 1.0, y) == pytest.approx(10 * np.log10(255.0**2))
    assert ssim_y(y, y) == pytest.approx(1.0)
    noise = rng.normal(0, 1, y.shape)
    noisy = y + 20 * noise
    assert ssim_y(noisy, y) < ssim_y(y + 5 * noise, y) < 1.0
    assert psnr_y(noisy, y, crop=4) == pytest.approx(psnr_y(noisy[4:-4, 4:-4], y[4:-4, 4:-4]))
    with pytest.raises(ValueError):
        psnr_y(y, y[:10])


def test_temporal_error_change():
    gt = [np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4))]
    steady = [np.ones((4, 4))] * 3
    flicker = [np.ones((4, 4)), -np.ones((4, 4)), np.ones((4, 4))]
    assert temporal_error_change(steady, gt) == 0.0
    assert temporal_error_change(flicker, gt) == pytest.approx(2.0)


def texture(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, uint8: something flow can follow."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3)
    return ((base - base.min()) / (base.max() - base.min()) * 255).round().astype(np.uint8)


def panning(n: int = 5, step: int = 2) -> list[np.ndarray]:
    base = texture()
    return [np.ascontiguousarray(np.roll(base, step * t, axis=1)) for t in range(n)]


def test_tof_is_zero_for_the_truth_and_the_motion_missed_for_a_frozen_output():
    frames = panning(step=2)
    assert tof(frames, frames) == 0.0
    # A frozen output misses the whole 2-pixel pan.
    assert tof([frames[0]] * len(frames), frames) == pytest.approx(2.0, abs=0.3)
    assert tof(frames[:1], frames[:1]) == 0.0
    with pytest.raises(ValueError):
        tof(frames, frames[:-1])


def test_warping_error_sees_flicker_but_not_motion():
    rng = np.random.default_rng(3)
    frames = panning(step=3)
    assert warping_error(frames, frames) < 1e-5
    assert warping_error(frames) < 1e-5  # motion estimated on the output itself
    sigma = 8.0
    noisy = [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]
    # Independent noise in two frames: the expected squared difference is 2 sigma^2.
    assert warping_error(noisy, frames) == pytest.approx(2 * (sigma / 255) ** 2, rel=0.15)
    with pytest.raises(ValueError):
        warping_error(frames, frames[:2])


def test_non_occluded_drops_inconsistent_and_outside_pixels():
    h, w = 20, 30
    zero = np.zeros((h, w, 2), np.float32)
    assert non_occluded(zero, zero).all()
    shift = np.zeros((h, w, 2), np.float32)
    shift[..., 0] = 5.0
    # Frame 2 is frame 1 moved 5 px right: its first 5 columns come from outside frame 1.
    ok = non_occluded(shift, -shift)
    assert not ok[:, :5].any() and ok[:, 6:].all()
    # Forward and backward flows that disagree: nothing is trusted.
    assert not non_occluded(shift, shift)[:, 6:].any()


def test_still_region_change():
    rng = np.random.default_rng(4)
    frame = texture()
    frames = [frame.copy() for _ in range(4)]
    for f in frames:
        f[:, :40] = rng.integers(0, 256, (f.shape[0], 40, 3), dtype=np.uint8)  # a busy strip
    mask = still_mask(frames, margin=2)
    assert not mask[:, :42].any() and mask[:, 43:].all()
    assert still_change(frames, mask) == 0.0
    boiling = [np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8) for f in frames]
    assert still_change(boiling, mask) > 1.0
    assert still_change(frames[:1], mask) == 0.0


def test_vmaf_through_ffmpeg():
    frames = panning(n=3)
    blurred = [imresize(imresize(f, 0.25), 4.0) for f in frames]
    same = vmaf(frames, frames)
    worse = vmaf(blurred, frames)
    assert same > 95
    assert worse < same - 10
    with pytest.raises(ValueError):
        vmaf(frames, frames[:1])
    with pytest.raises(RuntimeError, match="libvmaf failed"):
        vmaf(frames, frames, ffmpeg="/bin/false")


def test_compress_round_trip():
    frames = panning(n=4)
    odd = [f[:75, :99] for f in frames]
    light, heavy = compress(odd, crf=18), compress(odd, crf=40)
    assert len(light) == 4 and light[0].shape == (75, 99, 3) and light[0].dtype == np.uint8
    assert psnr_y(light[1], odd[1]) > psnr_y(heavy[1], odd[1]) + 3
    assert psnr_y(light[1], odd[1]) > 35
    # One thread, fixed settings: the same bytes every time.
    assert all((a == b).all() for a, b in zip(light, compress(odd, crf=18)))
    with pytest.raises(ValueError):
        compress([])
