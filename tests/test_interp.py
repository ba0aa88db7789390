"""Interpolation methods and the registry."""

from __future__ import annotations

import pytest
import torch

from vsr.errors import ConfigError
from vsr.methods.interp import _lanczos, resize
from vsr.methods.registry import METHODS, get_method, method_names


def test_registry_lists_methods_and_rejects_unknown_names():
    assert {"nearest", "bilinear", "bicubic", "lanczos", "misr", "realesrgan"} <= set(method_names())
    with pytest.raises(ConfigError, match="choose one of: nearest"):
        get_method("bicubc")
    assert all(":" in entry.target for entry in METHODS.values())


@pytest.mark.parametrize("name", ["nearest", "bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_interpolation_sizes_and_range(name, scale, device):
    method = get_method(name, scale=scale).to(device)
    frames = torch.rand(1, 3, 10, 14, device=device)
    out = method(frames, 0)
    assert tuple(out.shape) == (3, 10 * scale, 14 * scale)
    assert out.device.type == device
    if name in ("nearest", "bilinear"):
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_interpolation_rejects_params_and_bad_scales():
    with pytest.raises(ConfigError, match="takes no parameters"):
        get_method("bicubic", scale=2, window=5)
    with pytest.raises(ConfigError, match="--scale"):
        get_method("bicubic", scale=0)


def test_nearest_repeats_pixels():
    frames = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4) / 12
    out = get_method("nearest", scale=2)(frames, 0)
    assert torch.equal(out[0, ::2, ::2], frames[0, 0]) and torch.equal(out[0, 1::2, 1::2], frames[0, 0])


def test_torch_lanczos_matches_opencv_inside_the_picture():
    torch.manual_seed(0)
    image = torch.rand(3, 20, 24)
    cv = resize(image, (40, 48), "lanczos")
    ours = _lanczos(image, 40, 48)
    assert (cv - ours)[:, 8:-8, 8:-8].abs().max() < 2e-3


def test_target_size_is_honoured_directly():
    method = get_method("bicubic", scale=2)
    method.target_size = (30, 50)
    assert tuple(method(torch.rand(1, 3, 10, 14), 0).shape) == (3, 30, 50)


def test_resize_validates():
    with pytest.raises(ConfigError):
        resize(torch.rand(3, 4, 4), (8, 8), "sinc")
    with pytest.raises(ConfigError):
        resize(torch.rand(3, 4, 4), (0, 8))
