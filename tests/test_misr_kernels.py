"""MISR's compiled CPU kernels against the torch computations they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsr.methods.misr import fuse as fusion
from vsr.methods.misr.fuse import (
    Bilinear,
    CompiledBilinear,
    FuseConfig,
    Lattice,
    LatticeSamples,
    _add_btv_gradient,
    _btv_gradient_torch,
    _btv_offsets,
    _correlate_torch,
    correlate,
    make_psf,
    upsample,
)


def points(k: int, h: int, w: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positions over a ``size`` grid and a margin of two pixels beyond it (clamped
    there), with the grid's last row and column and some whole pixels among them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(k, h, w, generator=g) * (size[1] + 3) - 2
    y = torch.rand(k, h, w, generator=g) * (size[0] + 3) - 2
    x[0, 0, :3] = torch.tensor([0.0, size[1] - 1, 3.0])
    y[0, 0, :3] = torch.tensor([size[0] - 1, 0.0, size[0] - 1])
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
def test_compiled_bilinear_matches_grid_sample(channels):
    size = (23, 31)
    x, y = points(3, 9, 11, size, seed=channels)
    reference, compiled = Bilinear(x, y, size), CompiledBilinear(x, y, size)
    g = torch.Generator().manual_seed(5)
    image = torch.rand(channels, *size, generator=g)
    values = torch.rand(channels, 3, 9, 11, generator=g)
    # grid_sample's positions go through [-1, 1] and back: a few 1e-6 of a pixel apart
    torch.testing.assert_close(compiled.sample(image), reference.sample(image), rtol=0, atol=1e-5)
    torch.testing.assert_close(compiled.splat(values), reference.splat(values), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("quant", "planes_weighted"), [(0.0, 1), (0.01, 1), (0.0, 2)])
@pytest.mark.parametrize("with_lattice", [False, True])
def test_robust_splat_matches_the_torch_steps(quant, planes_weighted, with_lattice):
    """The neighbours' robust residual splatted, and the reference's on its lattice added, in
    one compiled pass against the torch steps."""
    size = (23, 31)
    x, y = points(4, 9, 11, size, seed=7)
    g = torch.Generator().manual_seed(8)
    image = torch.rand(2, *size, generator=g)
    values = image.mean() + 0.05 * torch.randn(2, 4, 9, 11, generator=g)  # residuals across the Lorentzian's knee
    weight = torch.rand(planes_weighted, 4, 9, 11, generator=g)
    ref = LatticeSamples(Lattice(1, 2, (11, 15), size), image.mean() + 0.05 * torch.randn(2, 11, 15, generator=g),
                         torch.rand(planes_weighted, 11, 15, generator=g)) if with_lattice else None
    want = Bilinear(x, y, size).robust_splat(image, values, weight, 2500.0, quant, ref)
    got = CompiledBilinear(x, y, size).robust_splat(image, values, weight, 2500.0, quant, ref)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if with_lattice:
        alone = CompiledBilinear(x, y, size).robust_splat(image, values, weight, 2500.0, quant)
        assert (got - alone)[:, 1::2, 1::2].abs().max() > 1e-3
        torch.testing.assert_close((got - alone)[:, ::2], torch.zeros_like(got[:, ::2]), rtol=0, atol=0)


def test_compiled_splat_is_the_exact_adjoint_of_sample():
    size = (40, 64)
    x, y = points(2, 20, 32, size, seed=3)
    op = CompiledBilinear(x, y, size)
    g = torch.Generator().manual_seed(4)
    image, values = torch.rand(1, *size, generator=g), torch.randn(1, 2, 20, 32, generator=g)
    lhs = (op.sample(image).double() * values.double()).sum()
    rhs = (image.double() * op.splat(values).double()).sum()
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs), (lhs, rhs)


def test_compiled_bilinear_clamps_points_that_are_not_numbers():
    op = CompiledBilinear(torch.tensor([[[float("nan"), float("inf")]]]), torch.tensor([[[1.0, float("-inf")]]]), (4, 5))
    image = torch.arange(20, dtype=torch.float32).reshape(1, 4, 5)
    torch.testing.assert_close(op.sample(image).flatten(), torch.tensor([5.0, 4.0]))  # (0, 1) and (4, 0)


@pytest.mark.parametrize(("radius", "epsilon"), [(1, 0.01), (1, 0.0), (2, 0.02)])
def test_compiled_btv_gradient_matches_torch(radius, epsilon):
    g = torch.Generator().manual_seed(radius)
    x = torch.rand(2, 17, 26, generator=g)
    x[:, 5:9, 4:12] = 0.5  # flat patch: differences of exactly zero
    offsets = _btv_offsets(radius, 0.7)
    want, got = torch.full_like(x, 0.25), torch.full_like(x, 0.25)
    _btv_gradient_torch(want, x, offsets, 0.003, epsilon)
    _add_btv_gradient(got, x, offsets, 0.003, epsilon)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("length", "start", "size"), [(8, -3, (17, 26)), (8, -4, (17, 26)), (11, -5, (9, 30)),
                                                       (7, -3, (3, 5)), (5, 0, (12, 7)), (4, -6, (6, 9)),
                                                       (13, -6, (2, 1)), (3, 2, (5, 6))])
def test_compiled_correlation_matches_torch(symmetric, length, start, size):
    """The separable correlation compiled and with shifted slices, for the blur's, its adjoint's
    and the Gaussians' taps, taps all on one side, and images smaller than the taps' reach
    (mirrored and clamped)."""
    g = torch.Generator().manual_seed(length)
    x = torch.rand(2, *size, generator=g)
    taps = torch.rand(length, generator=g) - 0.2
    want = _correlate_torch(x, taps, start, symmetric)
    got = correlate(x, taps, start, symmetric)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(correlate(x[:, :, :1].expand(-1, -1, 3), taps, start, symmetric),
                               _correlate_torch(x[:, :, :1].expand(-1, -1, 3), taps, start, symmetric), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_on_the_cpu_is_torch_bicubic(scale):
    image = torch.rand(2, 13, 19, generator=torch.Generator().manual_seed(scale))
    want = F.interpolate(image[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    torch.testing.assert_close(upsample(image, scale, (scale - 1) / 2), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("quant", [0.0, 0.004])
def test_fuse_with_the_kernels_matches_fuse_with_torch(monkeypatch, quant):
    """The whole fusion (kernel regression then six Nesterov steps) through the compiled
    kernels and through torch alone, on frames that really overlap."""
    g = torch.Generator().manual_seed(11)
    k, h, w, s = 4, 24, 30, 2
    scene = F.avg_pool2d(torch.rand(1, 2, 4 * h, 4 * w, generator=g), 3, 1, 1)[0]  # two planes, as chroma="fuse" gives
    shifts = torch.rand(k, 2, generator=g) * 3
    shifts[0] = 0
    frames, pos = [], []
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for dx, dy in shifts.tolist():
        # the frame sees the scene moved by (dx, dy) low-resolution pixels
        gx = (xs + 2 + dx) * 4 / (4 * w - 1) * 2 - 1
        gy = (ys + 2 + dy) * 4 / (4 * h - 1) * 2 - 1
        grid = torch.stack([gx, gy], -1)[None]
        frames.append(F.grid_sample(scene[None], grid, align_corners=True)[0])
        pos.append(torch.stack([xs + dx, ys + dy], -1))
    frames, pos = torch.stack(frames), torch.stack(pos)
    conf = torch.rand(k, h, w, generator=g)
    cfg = FuseConfig(scale=s, psf=make_psf("bicubic", s), kr_sigma=0.6, fallback=0.5, iterations=6, step=1.5,
                     momentum=0.7, data_scale=0.02, btv_weight=0.001, btv_alpha=0.7, btv_radius=1,
                     btv_epsilon=0.01, quant=quant)
    fast = fusion.fuse(frames, pos, conf, cfg)
    monkeypatch.setattr(fusion, "bilinear", Bilinear)
    monkeypatch.setattr(fusion, "_add_btv_gradient", lambda grad, x, o, wt, e=0.0: _btv_gradient_torch(grad, x, o, wt, e))
    slow = fusion.fuse(frames, pos, conf, cfg)
    assert fast.image.shape == (2, h * s, w * s)
    torch.testing.assert_close(fast.image, slow.image, rtol=0, atol=1e-4)
    torch.testing.assert_close(fast.evidence, slow.evidence, rtol=0, atol=1e-5)
    assert (fast.image - slow.image).abs().max() < 0.01 * (fast.image - frames[0].mean()).abs().max()


@pytest.mark.parametrize("channels,interleaved", [(1, False), (3, False), (3, True)])
def test_warp_bicubic_on_the_cpu_is_grid_sample(channels, interleaved):
    """The bicubic warp through OpenCV against torch's bicubic grid_sample (the path on CUDA),
    planar and with interleaved channels, at positions well inside, on the edges and beyond them."""
    from vsr.methods.misr.flow import warp_bicubic

    h, w = 21, 34
    g = torch.Generator().manual_seed(channels)
    image = torch.rand(channels, h, w, generator=g)
    if interleaved:
        image = image.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pos = torch.stack([xs, ys], -1)[None] + 3 * torch.randn(3, h, w, 2, generator=g)
    pos[0] = torch.stack([xs, ys], -1)  # whole pixels
    grid = torch.stack([pos[..., 0] * (2 / (w - 1)) - 1, pos[..., 1] * (2 / (h - 1)) - 1], -1)
    want = F.grid_sample(image[None].expand(3, -1, -1, -1), grid, mode="bicubic", padding_mode="border",
                         align_corners=True)
    got = warp_bicubic(image, pos)
    assert got.shape == (3, channels, h, w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    torch.testing.assert_close(got[0], image, rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_compiled_brightness_matching_matches_torch(channels):
    """The brightness matching's steps around the smoothing compiled and with torch, on
    neighbours with pixels at rest and identical to the reference, at rest and not identical,
    and moved."""
    from vsr.methods.misr.flow import warp_bicubic
    from vsr.methods.misr.photometric import _match_compiled, _match_torch, match_brightness

    g = torch.Generator().manual_seed(channels)
    k, h, w = 5, 23, 37
    planes = torch.rand(k, channels, h, w, generator=g)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack([xs, ys], -1)
    pos = grid[None] + 0.7 * torch.randn(k, h, w, 2, generator=g)
    pos[0] = grid
    pos[1, :10], planes[1, :, :10] = grid[:10], planes[0, :, :10]  # at rest and identical: kept as they are
    pos[2, :5] = grid[:5]  # at rest, brightness differs
    conf = torch.rand(k, h, w, generator=g)
    taps, start = fusion.gaussian_taps(0.8, torch.device("cpu"), torch.float32)
    warped = warp_bicubic(planes[0], pos[1:])
    want = _match_torch(planes, warped, pos, conf, taps, start)
    got = _match_compiled(planes, warped, pos, conf, taps, start)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(match_brightness(planes, pos, conf, 0.8), want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got[1, :, :10], planes[1, :, :10], rtol=0, atol=0)
    assert (got[2, :, :5] - planes[2, :, :5]).abs().max() > 1e-3
