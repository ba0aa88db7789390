"""span-crf: SPAN's folded form round-trips, trains in that form, and the shipped weights lift
compressed input above bicubic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, shared

from vsr.errors import ConfigError, ModelError
from vsr.methods import span_crf
from vsr.methods.interp import resize
from vsr.methods.registry import get_method
from vsr.models.arch import span as span_arch
from vsr.quality import compress, imresize, psnr_y, read_frames

ROOT = Path(__file__).resolve().parents[1]


def small_span(seed: int = 0) -> torch.nn.Module:
    """A SPAN with 8 channels and random training-time branches (a real spandrel module)."""
    from spandrel.architectures.SPAN.__arch.span import SPAN

    torch.manual_seed(seed)
    net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    net = span_arch.build(net.state_dict()).eval()
    with torch.inference_mode():
        net(torch.rand(1, 3, 8, 8))  # folds the branches into each eval_conv, as at inference
    return net


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def test_the_folded_form_gives_the_same_network():
    net = small_span()
    state = span_arch.folded(net.state_dict())
    assert not any(".sk." in k or ".conv." in k for k in state)
    again = span_arch.build(span_arch.unfolded(state)).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), net(x), atol=1e-5, rtol=0)


def test_training_the_folded_form_moves_the_network_and_saves_what_it_learned():
    net = small_span(1)
    params = span_arch.trainable(net)
    assert params and all(".sk." not in n and ".conv." not in n for n, p in net.named_parameters() if p.requires_grad)
    x, y = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 24, 24)
    before = net(x).detach()
    opt = torch.optim.Adam(params, lr=1e-2)
    torch.nn.functional.l1_loss(net(x), y).backward()
    opt.step()
    with torch.inference_mode():
        after = net(x)
        assert (after - before).abs().max() > 1e-3  # eval mode no longer re-folds the old branches over it
        saved = span_arch.build(span_arch.unfolded(span_arch.folded(net.state_dict()))).eval()
        torch.testing.assert_close(saved(x), after, atol=1e-5, rtol=0)


def test_tensors_that_are_not_a_folded_span_are_refused():
    with pytest.raises(ModelError, match="folded SPAN"):
        span_arch.unfolded({"conv1.weight": torch.zeros(4, 1, 3, 3)})


@pytest.mark.parametrize("native", span_crf.NATIVE)
def test_the_shipped_weights_were_trained_on_coded_frames(native):
    assert "--degradation x264" in (ROOT / "bench" / "logs" / f"span-crf-x{native}.log").read_text()


def test_scales_pick_the_network_and_parameters_are_checked():
    assert get_method("span-crf", scale=4).model.name == "span-crf-x4"
    assert get_method("span-crf", scale=3).model.name == "span-crf-x4"
    assert get_method("span-crf", scale=2).model.name == "span-crf-x2"
    for bad in ({"channels": 52}, {"model": "span-x4-ch48"}, {"tile": "x"}):
        with pytest.raises(ConfigError):
            get_method("span-crf", scale=4, **bad)
    with pytest.raises(ConfigError):
        get_method("span-crf", scale=9)


def test_missing_weights_say_how_to_build_them(monkeypatch, tmp_path):
    (tmp_path / "weights").mkdir()
    monkeypatch.setattr(span_crf.resources, "files", lambda _pkg: tmp_path)
    with pytest.raises(ModelError, match=r"bench/train_srcnn.py --net span --scales 4"):
        span_crf.load_model(4)


def test_span_crf_lifts_compressed_vid4_above_bicubic():
    # Vid4 trained nothing: the compressed-input protocol's first frames of calendar.
    import cv2

    gt = [np.ascontiguousarray(cv2.imread(str(shared(f"vid4/GT/calendar/{i:03d}.png")))[:, :, ::-1])
          for i in (1, 2, 3)]
    lr = compress([imresize(g, 0.25) for g in gt], crf=23)
    method = get_method("span-crf", scale=4)
    gains = []
    for low, truth in zip(lr, gt, strict=True):
        bicubic = psnr_y(to_uint8(resize(to_tensor(low), truth.shape[:2], "bicubic")), truth)
        gains.append(psnr_y(to_uint8(method(to_tensor(low)[None], 0)), truth) - bicubic)
    assert np.mean(gains) > 0.3


def test_cli_runs_span_crf_and_misr_span_crf(tmp_path, clip_factory):
    src = clip_factory("in.mp4", frames=5, size=(64, 48))
    for method in ("span-crf", "misr+span-crf"):
        out = tmp_path / f"{method}.mp4"
        done = run_cli("run", str(src), "-o", str(out), "--method", method, "--scale", "2", "--quiet")
        assert done.returncode == 0, done.stderr.decode()
        frames = read_frames(out, 10)
        assert len(frames) == 5 and frames[0].shape == (96, 128, 3)
