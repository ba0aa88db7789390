"""MISR: alignment accuracy, fusion quality against bicubic, the window contract, parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vsr.cli import preset_names
from vsr.errors import ConfigError
from vsr.methods.base import Window
from vsr.methods.misr.flow import FlowBank
from vsr.methods.misr.fuse import Bilinear, Blur, Lattice, make_psf
from vsr.methods.misr.method import Misr, build
from vsr.methods.registry import get_method
from vsr.quality import imresize, psnr_y

FAST = {"flow_preset": "medium", "iterations": 6}


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture with edges, ``(h, w, 3)`` float64 in 0..255."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), 2.5)
    base = (base - base.min()) / (base.max() - base.min())
    edges = np.zeros((h, w, 3))
    for _ in range(h * w // 150):  # random rectangles: sharp edges without periodic structure
        y, x = rng.integers(0, h), rng.integers(0, w)
        edges[y: y + rng.integers(3, 12), x: x + rng.integers(3, 12)] = rng.random(3)
    return 255 * (0.6 * base + 0.4 * edges)


def clip(shifts: list[tuple[int, int]], scale: int, size: tuple[int, int] = (40, 48), seed: int = 0):
    """Low-resolution frames of one scene moved by whole high-resolution pixels.

    Returns the ground-truth reference (``(sH, sW, 3)`` uint8), the frames (``(N, 3, H, W)``
    float) and the true flow of each frame to the first, in low-resolution pixels.
    """
    h, w = size
    margin = 4 * scale
    scene = texture(h * scale + 2 * margin, w * scale + 2 * margin, seed)
    crops = [scene[margin + dy: margin + dy + h * scale, margin + dx: margin + dx + w * scale] for dx, dy in shifts]
    lows = [imresize(np.clip(np.round(c), 0, 255).astype(np.uint8), 1 / scale) for c in crops]
    frames = torch.stack([torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in lows])
    truth = [(dx / scale, dy / scale) for dx, dy in shifts]
    return np.clip(np.round(crops[0]), 0, 255).astype(np.uint8), frames, truth


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def bicubic(frame: torch.Tensor, scale: int) -> np.ndarray:
    return imresize(to_uint8(frame), float(scale))


def luma_u8(frame: torch.Tensor) -> np.ndarray:
    y = 0.299 * frame[0] + 0.587 * frame[1] + 0.114 * frame[2]
    return (y * 255).round().byte().numpy()


SHIFTS = [(0, 0), (1, 2), (3, 1), (2, 3), (1, 0)]


def test_flow_recovers_known_subpixel_shifts():
    _, frames, truth = clip(SHIFTS, 4, size=(64, 80))
    bank = FlowBank("medium", fb_sigma=0.5)
    for i in range(len(SHIFTS)):
        bank.add(i, luma_u8(frames[i]))
    # The reference is the first frame; every other is reached by composing consecutive flows.
    align = bank.submit_alignment(tuple(range(len(SHIFTS))), 0).result()
    bank.close()
    ys, xs = np.mgrid[0:64, 0:80]
    inner = (slice(8, -8), slice(8, -8))
    for k, (tx, ty) in enumerate(truth):
        j = align.order.index(k)
        dx = np.median((align.pos[j, ..., 0] - xs)[inner])
        dy = np.median((align.pos[j, ..., 1] - ys)[inner])
        assert abs(dx - tx) < 0.1 and abs(dy - ty) < 0.1, (k, dx, dy, tx, ty)
        assert np.median(align.conf[j][inner]) > 0.5


@pytest.mark.parametrize("scale", [2, 4])
def test_the_fine_flow_preset_measures_subpixel_motion_at_full_resolution(scale):
    _, frames, truth = clip(SHIFTS, scale, size=(64, 80))
    error = {}
    for preset in ("medium", "fine"):
        bank = FlowBank(preset, fb_sigma=0.5)
        for i in range(len(SHIFTS)):
            bank.add(i, luma_u8(frames[i]))
        # Frame i shows the scene moved by truth[i]: its pixel x lies at x + truth[i] in frame 0.
        misses = [bank.flow(i, 0).flow[8:-8, 8:-8] - np.float32(truth[i]) for i in range(1, len(SHIFTS))]
        error[preset] = np.mean([np.hypot(m[..., 0], m[..., 1]).mean() for m in misses])
        bank.close()
    assert error["fine"] < 0.5 * error["medium"], error
    assert error["fine"] < 0.05, error


def test_blur_is_matlab_bicubic_shrink():
    x = torch.rand(1, 36, 48, dtype=torch.float64)
    for s in (2, 3, 4):
        psf = make_psf("bicubic", s)
        first = int(psf.offset - psf.delta)
        ours = Blur(psf, x.device, x.dtype)(x)[0, first::s, first::s].numpy()
        np.testing.assert_allclose(ours, imresize(x[0].numpy(), 1 / s), atol=1e-12)


def test_splat_is_the_transpose_of_sample():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 8, 10, generator=g)
    scattered = Bilinear(torch.rand(3, 4, 5, generator=g) * 11 - 1, torch.rand(3, 4, 5, generator=g) * 9 - 1, (8, 10))
    lattice = Lattice(1, 2, (4, 5), (8, 10))
    for sampler, values in ((scattered, torch.rand(2, 3, 4, 5, generator=g)), (lattice, torch.rand(2, 4, 5, generator=g))):
        lhs = (sampler.sample(image) * values).sum()
        rhs = (image * sampler.splat(values)).sum()
        torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_bilinear_samples_where_it_is_told():
    image = torch.arange(80, dtype=torch.float32).reshape(1, 8, 10)  # value = 10 y + x
    x = torch.tensor([[[0.0, 2.25, 9.0, 12.0]]])
    y = torch.tensor([[[0.0, 3.5, 7.0, -2.0]]])
    got = Bilinear(x, y, (8, 10)).sample(image).flatten()
    torch.testing.assert_close(got, torch.tensor([0.0, 37.25, 79.0, 9.0]))  # outside: clamped to the edge


@pytest.mark.parametrize("scale", [2, 4])
def test_misr_beats_bicubic(scale):
    gt, frames, _ = clip(SHIFTS, scale)
    method = build(scale, **FAST)
    ours = psnr_y(to_uint8(method(frames, 0)), gt)
    base = psnr_y(bicubic(frames[0], scale), gt)
    assert ours > base + 1.0, (ours, base)


@pytest.mark.parametrize("scale", [2, 4])
def test_misr_beats_bicubic_on_x264_coded_input(scale):
    from vsr.quality import compress

    gt, frames, _ = clip(SHIFTS, scale, size=(48, 64))
    lows = compress([to_uint8(f) for f in frames], crf=23)  # real libx264, 4:2:0, then decoded
    coded = torch.stack([torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in lows])
    ours = psnr_y(to_uint8(build(scale, **FAST)(coded, 0)), gt)
    base = psnr_y(bicubic(coded[0], scale), gt)
    assert ours > base + 0.2, (ours, base)


@pytest.mark.parametrize("scale", [2, 4])
def test_a_wide_data_term_at_first_keeps_the_neighbours_detail(scale):
    # The first steps start from a blurred estimate: a Lorentzian as tight there as at the end
    # takes the neighbours' well-aligned samples on textured areas for outliers.
    gt, frames, _ = clip(SHIFTS, scale)
    narrowing = psnr_y(to_uint8(build(scale, **FAST)(frames, 0)), gt)
    tight = psnr_y(to_uint8(build(scale, data_scale_start=0.0, **FAST)(frames, 0)), gt)
    assert narrowing > tight + 0.2, (narrowing, tight)


def test_more_frames_help():
    gt, frames, _ = clip(SHIFTS, 2)
    one = psnr_y(to_uint8(build(2, window=1, **FAST)(frames[:1], 0)), gt)
    five = psnr_y(to_uint8(build(2, **FAST)(frames, 0)), gt)
    assert five > one + 0.3, (five, one)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape(scale):
    frames = torch.rand(5, 3, 20, 26)
    out = build(scale, iterations=1)(frames, 2)
    assert out.shape == (3, 20 * scale, 26 * scale)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_causal_reference_is_last():
    gt, frames, _ = clip(SHIFTS, 2)
    frames = frames.flip(0)  # the frame the ground truth shows comes last
    method = build(2, causal=True, **FAST)
    assert method.causal and method.radius == 2
    win = Window(frames, ref=4, indices=(0, 1, 2, 3, 4))
    out = next(method.stream([win]))
    assert psnr_y(to_uint8(out), gt) > psnr_y(bicubic(frames[4], 2), gt) + 1.0


def test_duplicated_frames_count_once():
    gt, frames, _ = clip(SHIFTS[:3], 2)
    padded = frames[[0, 0, 0, 1, 2]]
    five = build(2, **FAST)
    with_indices = next(five.stream([Window(padded, 2, (0, 0, 0, 1, 2))]))
    bare = five(padded, 2)
    three = build(2, window=3, **FAST)(frames, 0)
    torch.testing.assert_close(with_indices, bare)
    torch.testing.assert_close(with_indices, three)
    assert psnr_y(to_uint8(with_indices), gt) > psnr_y(bicubic(frames[0], 2), gt)


def test_stream_matches_single_calls_and_costs_one_flow_pair_per_frame(monkeypatch):
    _, frames, _ = clip(SHIFTS + [(2, 2), (0, 3)], 2, size=(24, 30))
    n = frames.shape[0]
    method = build(2, iterations=2)
    calls = []
    original = FlowBank._compute_pair
    monkeypatch.setattr(FlowBank, "_compute_pair", lambda self, a, b: calls.append((a, b)) or original(self, a, b))
    wins = []
    for t in range(n):
        idx = tuple(min(max(t + o, 0), n - 1) for o in range(-2, 3))
        wins.append(Window(frames[list(idx)], 2, idx))
    streamed = list(method.stream(wins))
    assert sorted(calls) == [(i, i + 1) for i in range(n - 1)]
    for win, out in zip(wins, streamed):
        torch.testing.assert_close(out, method(win.frames, win.ref))


@pytest.mark.parametrize("threads", [1, 3])
def test_a_long_stream_keeps_only_the_frames_it_still_needs(monkeypatch, threads):
    _, frames, _ = clip(SHIFTS, 2, size=(16, 20))
    method = build(2, iterations=1, causal=True, threads=threads)
    banks = []
    original = Misr.flow_bank
    monkeypatch.setattr(Misr, "flow_bank", lambda self: banks.append(original(self)) or banks[-1])
    held = []

    def windows():
        for t in range(60):  # a live stream: every window arrives only after the last was taken
            idx = tuple(max(t + o, 0) for o in range(-4, 1))
            yield Window(frames[[i % 5 for i in idx]], 4, idx)
            held.append(len(banks[0]._luma))

    assert len(list(method.stream(windows()))) == 60
    assert max(held) <= 5 + threads + 1, held


def test_fusion_workers_follow_threads_and_free_memory(monkeypatch):
    import vsr.methods.misr.method as misr_method

    method = build(2, threads=4)
    assert method.fusion_workers((5, 3, 36, 64)) == 4
    one_frame = 40 * 5 * 360 * 640 * 4  # bytes one 640x360 x2 fusion of 5 frames needs
    monkeypatch.setattr(misr_method, "available_bytes", lambda device: 5 * one_frame)
    assert method.fusion_workers((5, 3, 360, 640)) == 2  # half of what is free
    assert method.fusion_workers((5, 3, 1080, 1920)) == 1  # never fewer than one


def test_windows_without_indices_are_not_mixed_up():
    _, a, _ = clip(SHIFTS, 2, size=(16, 20), seed=1)
    _, b, _ = clip(SHIFTS, 2, size=(16, 20), seed=2)
    method = build(2, iterations=1)
    outs = list(method.stream([Window(a, 2), Window(b, 2)]))
    torch.testing.assert_close(outs[1], method(b, 2))


def test_evidence_maps(tmp_path):
    _, frames, _ = clip(SHIFTS, 2, size=(16, 20))
    method = build(2, evidence=str(tmp_path / "ev"), iterations=1)
    list(method.stream([Window(frames, 2, (10, 11, 12, 13, 14), (5120, 5632, 6144, 6656, 7168))]))
    import cv2

    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["000000006144.png"]  # the reference's pts
    ev = cv2.imread(str(tmp_path / "ev" / "000000006144.png"), cv2.IMREAD_UNCHANGED)
    assert ev.dtype == np.uint16 and ev.shape == (32, 40)
    # Five aligned frames: well over one frame's worth of observations in the interior.
    assert np.median(ev[4:-4, 4:-4]) > 2000


def test_evidence_maps_of_two_runs_over_one_source_do_not_overwrite(tmp_path):
    # Two parts of one video decoded separately (as Ray tasks do) both count frames from 0.
    _, frames, _ = clip(SHIFTS, 2, size=(16, 20))
    method = build(2, evidence=str(tmp_path / "ev"), iterations=1)
    for first in (0, 5):
        list(method.stream([Window(frames, 2, (0, 1, 2, 3, 4), tuple(512 * (first + i) for i in range(5)))]))
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["000000001024.png", "000000003584.png"]
    list(method.stream([Window(frames, 2)]))  # no timing at all: named by decode index
    assert (tmp_path / "ev" / "index000002.png").is_file()


def test_describe_is_json_and_complete():
    method = get_method("misr", scale=3, window=7, btv_weight=0.002)
    record = json.loads(json.dumps(method.describe()))
    assert record["scale"] == 3 and record["radius"] == 3
    assert record["params"]["window"] == 7 and record["params"]["btv_weight"] == 0.002
    assert {"flow_preset", "iterations", "psf", "chroma", "evidence"} <= set(record["params"])


@pytest.mark.parametrize("bad", [
    {"scale": 1}, {"scale": 9}, {"scale": 2.5}, {"window": 4}, {"window": 0}, {"flow_preset": "slow"},
    {"iterations": -1}, {"momentum": 1.0}, {"btv_alpha": 0}, {"chroma": "green"}, {"robust": 0}, {"sharpness": 2},
    {"device": "tpu"}, {"causal": "yes"}, {"data_scale_start": -0.1}, {"overshoot": -0.5}, {"antiring": "yes"},
])
def test_bad_parameters_raise_config_error(bad):
    params = dict(bad)
    scale = params.pop("scale", 2)
    with pytest.raises(ConfigError, match="misr"):
        build(scale, **params)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_matches_cpu(dtype):
    gt, frames, _ = clip(SHIFTS, 2)
    cpu = build(2, **FAST)(frames, 0)
    gpu = build(2, device="cuda", dtype=dtype, **FAST)(frames.cuda(), 0)
    assert gpu.device.type == "cuda"
    assert abs(psnr_y(to_uint8(gpu.float().cpu()), gt) - psnr_y(to_uint8(cpu), gt)) < 0.2


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_builds_its_method_and_encoder(preset):
    from vsr.cli import load_preset
    from vsr.io.encode import EncodeSettings
    from vsr.methods.registry import get_method

    config = load_preset(preset)
    method = config["method"]
    built = get_method(method["name"], scale=method.get("scale", 2), **method.get("params", {}))
    assert built.scale == method.get("scale", 2)
    EncodeSettings(**config.get("encode", {})).validate()


def still_scene(frames: int = 6, noise_pixels: float = 0.02, seed: int = 5) -> list[np.ndarray]:
    """A still textured picture whose frames differ only by +-1 level on a few pixels (coding noise)."""
    rng = np.random.default_rng(seed)
    base = np.clip(np.round(texture(48, 64, seed)), 0, 255).astype(np.int16)
    out = []
    for _ in range(frames):
        flips = (rng.random(base.shape) < noise_pixels) * rng.choice([-1, 1], base.shape)
        out.append(np.clip(base + flips, 0, 255).astype(np.uint8))
    return out


def stream_outputs(method, lows: list[np.ndarray]) -> list[np.ndarray]:
    tensors = [torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in lows]
    n, r = len(tensors), method.radius
    wins = []
    for t in range(n):
        idx = tuple(min(max(t + o, 0), n - 1) for o in range(-r, r + 1))
        wins.append(Window(torch.stack([tensors[i] for i in idx]), r, idx))
    return [to_uint8(o) for o in method.stream(wins)]


def test_a_still_picture_does_not_boil():
    from vsr.quality import still_change

    lows = still_scene()
    mask = np.ones((96, 128), bool)
    steady = still_change(stream_outputs(build(2), lows), mask)
    base = still_change([imresize(x, 2.0) for x in lows], mask)
    assert steady <= 1.5 * base, (steady, base)
    # The plain L1 prior, flow trusted everywhere and the old step: the faintest noise boils.
    boiling = still_change(stream_outputs(build(2, btv_epsilon=0.0, still=0.0, step=2.0, data_scale=0.05), lows),
                           mask)
    assert boiling > 3 * base, (boiling, base)


def test_still_motion_puts_still_pixels_at_rest():
    from vsr.methods.misr.flow import still_motion

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    grid = np.stack(np.meshgrid(np.arange(30), np.arange(20)), -1).astype(np.float32)
    pos = grid + rng.uniform(-0.4, 0.4, grid.shape).astype(np.float32)  # flow noise on a still frame
    conf = np.full((20, 30), 0.3, np.float32)
    still = still_motion(ref, ref, pos, conf, 0.01)
    assert still.all() and (pos == grid).all() and (conf == 1).all()
    # A frame that really moved (one pixel right) keeps its flow.
    moved = np.roll(ref, 1, axis=1)
    pos = grid - np.float32([1, 0])
    assert not still_motion(moved, ref, pos, np.ones((20, 30), np.float32), 0.01)[:, 3:-3].any()


def test_smoothed_btv_gradient_fades_on_flat_areas():
    from vsr.methods.misr.fuse import _add_btv_gradient, _btv_offsets

    flat = torch.full((1, 16, 16), 0.5) + 1e-6 * torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(0))
    sharp, smooth = torch.zeros_like(flat), torch.zeros_like(flat)
    offsets = _btv_offsets(1, 0.7)
    _add_btv_gradient(sharp, flat, offsets, 1.0)
    _add_btv_gradient(smooth, flat, offsets, 1.0, epsilon=0.01)
    assert sharp.abs().max() > 0.5 and smooth.abs().max() < 0.01
    step = torch.zeros(1, 16, 16)
    step[:, :, 8:] = 1.0
    a, b = torch.zeros_like(step), torch.zeros_like(step)
    _add_btv_gradient(a, step, offsets, 1.0)
    _add_btv_gradient(b, step, offsets, 1.0, epsilon=0.01)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)  # real edges are pulled as before


@pytest.mark.parametrize("scale", [2, 4])
def test_neighbours_brighter_than_the_reference_do_not_pull_a_flat_picture(scale):
    import cv2

    # A smooth, clean scene moving by whole high-resolution pixels while it brightens by 1.5
    # levels a frame (auto-exposure under a pan): the neighbours' detail is worth little here,
    # and fusing their brightness would shift the whole picture.
    h, w, margin = 40, 48, 4 * scale
    rng = np.random.default_rng(3)
    field = cv2.GaussianBlur(rng.random((h * scale + 2 * margin, w * scale + 2 * margin)), (0, 0), 3 * scale)
    scene = np.repeat((60 + 140 * (field - field.min()) / np.ptp(field))[..., None], 3, axis=2)
    crops = [scene[margin + dy: margin + dy + h * scale, margin + dx: margin + dx + w * scale] for dx, dy in SHIFTS]
    lows = [imresize(np.clip(np.round(c + 1.5 * i), 0, 255).astype(np.uint8), 1 / scale) for i, c in enumerate(crops)]
    frames = torch.stack([torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in lows])
    gt = np.clip(np.round(crops[0]), 0, 255).astype(np.uint8)
    ours = psnr_y(to_uint8(build(scale, **FAST)(frames, 0)), gt)
    base = psnr_y(bicubic(frames[0], scale), gt)
    assert ours > base - 1.0, (ours, base)


def test_a_static_block_in_grainy_film_keeps_the_neighbours_samples():
    from vsr.methods.misr.photometric import match_brightness

    # Film: every frame has fresh grain and flickers by two levels, except a block the coder
    # left untouched (the same samples in every frame). The block's neighbours need no
    # brightness matching; the grain and flicker around it must not be carried into it.
    k, h, w = 3, 48, 64
    rng = np.random.default_rng(5)
    base = 0.3 + 0.4 * rng.random((h, w))
    frames = [base + rng.normal(0, 0.02, (h, w)) + 2 / 255 * i for i in range(k)]
    block = (slice(16, 32), slice(24, 40))
    for f in frames[1:]:
        f[block] = frames[0][block]
    frames = [np.round(f * 255) / 255 for f in frames]
    planes = torch.from_numpy(np.stack(frames)[:, None]).float()
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pos = torch.stack([xs, ys], -1).expand(k, h, w, 2).contiguous()  # all at rest, as still_motion leaves them
    out = match_brightness(planes, pos, torch.ones(k, h, w), 0.8)
    assert torch.equal(out[1:, 0][:, block[0], block[1]], planes[1:, 0][:, block[0], block[1]])
    # Outside the block the flicker is still removed.
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[16 - 3: 32 + 3, 24 - 3: 40 + 3] = False
    before = (planes[1:, 0] - planes[0, 0])[:, outside].mean(1).abs()
    after = (out[1:, 0] - planes[0, 0])[:, outside].mean(1).abs()
    assert (after < 0.25 * before).all(), (before, after)


@pytest.mark.parametrize(("scale", "offset"), [(2, 0.5), (3, 1.0), (4, 1.5), (4, 0.0)])
def test_antiring_keeps_each_pixel_within_its_widened_neighbourhood(scale, offset):
    from vsr.methods.misr.fuse import ONE_LEVEL, clamp_to_neighbourhood

    gen = torch.Generator().manual_seed(scale)
    ref = torch.rand(2, 9, 11, generator=gen)
    image = torch.rand(2, 9 * scale, 11 * scale, generator=gen) * 1.6 - 0.3
    out = clamp_to_neighbourhood(image, ref, scale, offset, 0.5)
    # The bounds independently: the minimum and maximum of each 3x3 window (edges repeated, which
    # ignores the outside), each output pixel on the input pixel nearest to it (input pixel q sits
    # at output coordinate q * scale + offset).
    parent_rows = np.clip(np.floor((np.arange(9 * scale) - offset) / scale + 0.5), 0, 8).astype(int)
    parent_cols = np.clip(np.floor((np.arange(11 * scale) - offset) / scale + 0.5), 0, 10).astype(int)
    for c in range(2):
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(ref[c].numpy(), 1, mode="edge"), (3, 3))
        lo, hi = windows.min(axis=(2, 3)), windows.max(axis=(2, 3))
        margin = 0.5 * (hi - lo) + ONE_LEVEL
        lo, hi = (lo - margin)[np.ix_(parent_rows, parent_cols)], (hi + margin)[np.ix_(parent_rows, parent_cols)]
        expected = np.clip(image[c].numpy(), lo, hi)
        np.testing.assert_allclose(out[c].numpy(), expected, atol=1e-6)
    # On a flat input only one level of slack is left; what lies within it is not touched.
    inside = image.clamp(0.5 - 0.9 * ONE_LEVEL, 0.5 + 0.9 * ONE_LEVEL)
    flat = torch.full_like(ref, 0.5)
    assert torch.equal(clamp_to_neighbourhood(inside, flat, scale, offset, 0.5), inside)
    assert clamp_to_neighbourhood(image, flat, scale, offset, 0.5).sub(0.5).abs().max() <= ONE_LEVEL + 1e-6


def bar_beside_a_moving_picture(frames: int = 6, scale: int = 2) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A dark still bar (a film's pillarbox) beside a textured picture that moves: ground truth
    and the frames area-shrunk by ``scale``, as uint8 RGB."""
    import cv2

    h, w, bar = 48 * scale, 64 * scale, 16 * scale
    scene = texture(h + 40, w + 40, 3)
    truth, lows = [], []
    for t in range(frames):
        frame = scene[20 + t: 20 + t + h, 20 + 2 * t: 20 + 2 * t + w].copy()
        frame[:, :bar] = 3.0
        frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        truth.append(frame)
        lows.append(cv2.resize(frame, (w // scale, h // scale), interpolation=cv2.INTER_AREA))
    return truth, lows


def test_antiring_stops_the_ringing_beside_a_moving_picture_from_flickering():
    from vsr.quality import still_change, still_mask

    truth, lows = bar_beside_a_moving_picture()
    bar = still_mask(truth)
    assert bar[:, 40:].sum() == 0 and bar.sum() > 2000  # the bar, less its last columns
    kept = still_change(stream_outputs(build(2), lows), bar)
    ringing = still_change(stream_outputs(build(2, antiring=False), lows), bar)
    assert kept < 0.5 * ringing, (kept, ringing)
    # The textured clip keeps what misr recovers.
    gt, frames, _ = clip(SHIFTS, 2)
    on, off = build(2, **FAST)(frames, 0), build(2, antiring=False, **FAST)(frames, 0)
    assert psnr_y(to_uint8(on), gt) > psnr_y(to_uint8(off), gt) - 0.05


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("scale", "offset"), [(2, 0.5), (4, 0.0)])
def test_antiring_on_cuda_matches_the_cpu(scale, offset):
    from vsr.methods.misr.fuse import clamp_to_neighbourhood

    gen = torch.Generator().manual_seed(1)
    ref = torch.rand(3, 9, 11, generator=gen)
    image = torch.rand(3, 9 * scale, 11 * scale, generator=gen) * 1.6 - 0.3
    cpu = clamp_to_neighbourhood(image, ref, scale, offset, 0.5)
    gpu = clamp_to_neighbourhood(image.cuda(), ref.cuda(), scale, offset, 0.5)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=0)
