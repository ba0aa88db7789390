"""SRCNN: the luma correction, strips equal to the whole frame, the shipped weights beat bicubic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli, shared
from vsr.errors import ConfigError
from vsr.methods import srcnn
from vsr.methods.interp import resize
from vsr.methods.registry import get_method
from vsr.quality import imresize, psnr_y, read_frames

ROOT = Path(__file__).resolve().parents[1]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def random_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = srcnn.make_net(9, 5, 5, 16, 8).eval()
    with torch.no_grad():
        net.conv3.weight.mul_(5)
    return net


def test_a_zero_correction_is_bicubic_and_the_correction_touches_luma_only():
    net = srcnn.make_net()
    torch.nn.init.zeros_(net.conv3.weight)
    torch.nn.init.zeros_(net.conv3.bias)
    lr = to_tensor(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    bic = resize(lr, (40, 60), "bicubic")
    assert torch.equal(srcnn.Srcnn(2, net.eval())(lr[None], 0), bic)

    out = srcnn.Srcnn(2, random_net())(lr[None], 0)
    delta = out - bic
    assert delta.abs().max() > 0.01
    # The same change in R, G and B: Cb and Cr stay; Y moves by 219/255 of it.
    torch.testing.assert_close(delta[0], delta[1])
    torch.testing.assert_close(delta[1], delta[2])


def test_strips_give_the_whole_frame(monkeypatch):
    lr = to_tensor(np.random.default_rng(1).integers(0, 256, (45, 33, 3), dtype=np.uint8))
    method = srcnn.Srcnn(3, random_net(2))
    whole = method(lr[None], 0)
    monkeypatch.setattr(srcnn, "_STRIP_ROWS", 16)
    strips = method(lr[None], 0)
    assert whole.shape == (3, 135, 99)
    torch.testing.assert_close(strips, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bad", [{"scale": 5}, {"scale": 2}, {"scale": 4, "tile": 64}])
def test_bad_parameters_raise_config_error(bad):
    with pytest.raises(ConfigError):
        get_method("srcnn", **bad)


def test_weights_that_are_not_srcnn_are_refused():
    from vsr.errors import ModelError

    with pytest.raises(ModelError, match="not SRCNN"):
        srcnn.net_from_state({"conv1.weight": torch.zeros(4, 1, 3, 3)})


def test_srcnn_beats_bicubic_on_frames_it_never_saw():
    # FFmpeg's testsrc2 pattern: not in the training data.
    hr = [np.ascontiguousarray(f[:180, :318]) for f in read_frames(ROOT / "samples" / "vfr_audio.mp4", 3)]
    method = get_method("srcnn", scale=3)
    gains = []
    for frame in hr:
        lr = imresize(frame, 1 / 3)
        bic = to_uint8(resize(to_tensor(lr), frame.shape[:2], "bicubic"))
        ours = to_uint8(method(to_tensor(lr)[None], 0))
        gains.append(psnr_y(ours, frame) - psnr_y(bic, frame))
    assert np.mean(gains) > 0.3


def test_srcnn_beats_bicubic_on_vid4():
    import cv2

    gt = cv2.imread(str(shared("vid4/GT/calendar/001.png")))[:, :, ::-1]
    lr = imresize(np.ascontiguousarray(gt), 0.25)
    method = get_method("srcnn", scale=4)
    ours = to_uint8(method(to_tensor(lr)[None], 0))
    bic = to_uint8(resize(to_tensor(lr), gt.shape[:2], "bicubic"))
    # 20.68 against 20.32 when trained (the weights trained on x2, x3 and x4 together: 20.51)
    assert psnr_y(ours, gt) > psnr_y(bic, gt) + 0.3


def test_cli_runs_srcnn(tmp_path, clip_factory):
    src = clip_factory("in.mp4", frames=4, size=(64, 48))
    out = tmp_path / "out.mp4"
    done = run_cli("run", str(src), "-o", str(out), "--method", "srcnn", "--scale", "3", "--quiet")
    assert done.returncode == 0, done.stderr.decode()
    frames = read_frames(out, 10)
    assert len(frames) == 4 and frames[0].shape == (144, 192, 3)
