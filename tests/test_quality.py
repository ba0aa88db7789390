"""The evaluation protocol: MATLAB-compatible bicubic, BD degradation, Y metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsr.quality import (
    degrade_bd,
    imresize,
    psnr_y,
    rgb_to_y,
    ssim_y,
    temporal_error_change,
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
