"""SRCNN (Dong et al. 2014/2016): three convolutions on the luma of the bicubic upscale.

The network is the paper's (patch extraction ``f1 x f1`` to ``n1`` maps, non-linear mapping
``f2 x f2`` to ``n2``, reconstruction ``f3 x f3``; ReLU between) working on Y only, with one
change in training rather than in shape: it predicts the correction to add to the bicubic
luma, so it starts as bicubic and learns in minutes on a CPU. Chroma is the bicubic
upscale's; the luma correction is added to R, G and B alike, which changes Y and leaves Cb
and Cr as they are.

The weights ship with the package, one file per scale (``vsr/methods/weights/srcnn-x3`` and
``srcnn-x4.safetensors``), trained in this repository by ``bench/train_srcnn.py`` on frames of
the bundled clips (logs and sha256 in ``bench/logs/srcnn-x*.log``); nothing is downloaded. The
x4 network was trained at x4 alone; the x3 one on x2, x3 and x4 together, and beats bicubic on
held-out frames at x3 and x4 but not at x2 (it sharpens too much), so x2 is not offered.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from vsr.errors import ConfigError, ModelError
from vsr.methods.base import Method
from vsr.methods.interp import resize
from vsr.methods.params import NoParams, parse

if TYPE_CHECKING:
    import torch

#: BT.601 studio-swing luma of RGB in [0, 1], as :func:`vsr.quality.rgb_to_y` (divided by 255).
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0
#: Adding ``d`` to R, G and B raises studio-swing Y by ``d * 219 / 255`` and leaves Cb, Cr.
_Y_TO_RGB = 255.0 / 219.0
#: Scales with shipped weights.
SCALES = (3, 4)
#: Rows of output computed at once; bounds memory to about ``64 * 4 * rows * width`` bytes.
_STRIP_ROWS = 256


def _net_class():
    import torch
    from torch import nn

    class SrcnnNet(nn.Module):
        """``(B, 1, H, W)`` luma in [0, 1] -> the same plus the learned correction.

        Args:
            f1, f2, f3: kernel sizes (9, 1 or 5, 5 in the paper).
            n1, n2: feature maps (64, 32).
        """

        def __init__(self, f1: int = 9, f2: int = 1, f3: int = 5, n1: int = 64, n2: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, n1, f1, padding=f1 // 2, padding_mode="replicate")
            self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2, padding_mode="replicate")
            self.conv3 = nn.Conv2d(n2, 1, f3, padding=f3 // 2, padding_mode="replicate")
            self.reach = f1 // 2 + f2 // 2 + f3 // 2

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv1(y))
            h = torch.relu(self.conv2(h))
            return y + self.conv3(h)

    return SrcnnNet


def make_net(f1: int = 9, f2: int = 1, f3: int = 5, n1: int = 64, n2: int = 32) -> torch.nn.Module:
    """A fresh SRCNN ``f1-f2-f3`` with ``n1``/``n2`` maps (randomly initialised)."""
    return _net_class()(f1, f2, f3, n1, n2)


def net_from_state(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An SRCNN whose shape is read from ``state`` (a ``conv1/conv2/conv3`` state dict), loaded.

    Raises:
        ModelError: the tensors are not an SRCNN's.
    """
    try:
        n1, _, f1, _ = state["conv1.weight"].shape
        n2, _, f2, _ = state["conv2.weight"].shape
        _, _, f3, _ = state["conv3.weight"].shape
        net = make_net(f1, f2, f3, n1, n2)
        net.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"not SRCNN weights ({exc}); rebuild them with bench/train_srcnn.py") from None
    return net.eval()


def load_weights(scale: int) -> torch.nn.Module:
    """The SRCNN shipped for ``scale`` (one of :data:`SCALES`), ``vsr/methods/weights/srcnn-x<scale>.safetensors``,
    in eval mode on the CPU.

    Raises:
        ModelError: the file is missing (a source checkout without it) or not SRCNN weights.
    """
    from safetensors.torch import load

    name = f"srcnn-x{scale}.safetensors"
    try:
        data = resources.files("vsr.methods").joinpath("weights", name).read_bytes()
    except (FileNotFoundError, OSError):
        raise ModelError(f"the SRCNN weights vsr/methods/weights/{name} are missing; rebuild them with "
                         f"bench/train_srcnn.py (bench/logs/srcnn-x{scale}.log has the command)") from None
    return net_from_state(load(data))


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` RGB in [0, 1] -> ``(1, H, W)`` BT.601 studio-swing Y in [16/255, 235/255]."""
    r, g, b = rgb[0], rgb[1], rgb[2]
    return (_Y_OFFSET + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b)[None]


class Srcnn(Method):
    """SRCNN on the luma of the bicubic upscale, chroma bicubic.

    Args:
        scale: output scale.
        net: the network (default: the weights shipped for ``scale``, one of :data:`SCALES`).
        name: registry name reported by :meth:`describe`.
    """

    radius = 0

    def __init__(self, scale: int, net: torch.nn.Module | None = None, name: str = "srcnn") -> None:
        super().__init__()
        self.name = name
        self.scale = scale
        self.net = net if net is not None else load_weights(scale)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> Srcnn:
        super().to(device, dtype)
        self.net.to(self.device, self.dtype)
        return self

    def correct(self, bicubic: torch.Tensor) -> torch.Tensor:
        """The bicubic upscale ``(3, H, W)`` in [0, 1] with the network's luma correction added.

        Computed in strips of :data:`_STRIP_ROWS` rows that overlap by the network's reach, so
        the result equals the whole-frame one and memory stays bounded.
        """
        import torch

        x = bicubic.to(self.device, self.dtype)
        y = luma(x)[None]
        reach = self.net.reach
        h = y.shape[-2]
        delta = torch.empty_like(y)
        with torch.inference_mode():
            for top in range(0, h, _STRIP_ROWS):
                lo, hi = max(0, top - reach), min(h, top + _STRIP_ROWS + reach)
                part = y[..., lo:hi, :]
                out = self.net(part) - part
                delta[..., top:min(h, top + _STRIP_ROWS), :] = out[..., top - lo:top - lo + min(_STRIP_ROWS, h - top), :]
        return x + delta[0] * _Y_TO_RGB

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        h, w = self.output_size(frames.shape[-2], frames.shape[-1])
        bicubic = resize(frames[ref].float(), (h, w), "bicubic")
        return self.correct(bicubic)


def build(scale: int = 2, **params: Any) -> Srcnn:
    """``--method srcnn``: the SRCNN shipped for ``scale``, x3 or x4.

    Raises:
        ConfigError: another scale, or any parameter (it takes none).
    """
    parse(NoParams, params, method="srcnn")
    if scale not in SCALES:
        raise ConfigError(f"srcnn's shipped weights upscale x3 or x4; got --scale {scale} "
                          "(use --scale 3 or 4, or misr)")
    return Srcnn(scale)
