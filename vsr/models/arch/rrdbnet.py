"""RRDBNet, the generator of ESRGAN and Real-ESRGAN.

Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks" (2018),
and "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data"
(2021). Residual-in-residual dense blocks (RRDB) of three dense blocks of five 3x3 convs,
residuals scaled by 0.2, then two nearest-neighbour x2 upsamplings, each followed by a conv.

Module names follow the usual layout (``conv_first``, ``body.N.rdbM.convK``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``) so that a saved state dict is also
recognised by other tools (spandrel detects it as ESRGAN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.2
_RESIDUAL = 0.2


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the concatenation of the input and all earlier outputs."""

    def __init__(self, feats: int, growth: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feats, growth, 3, padding=1)
        self.conv2 = nn.Conv2d(feats + growth, growth, 3, padding=1)
        self.conv3 = nn.Conv2d(feats + 2 * growth, growth, 3, padding=1)
        self.conv4 = nn.Conv2d(feats + 3 * growth, growth, 3, padding=1)
        self.conv5 = nn.Conv2d(feats + 4 * growth, feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), _SLOPE, inplace=True))
        return torch.add(x, self.conv5(torch.cat(features, 1)), alpha=_RESIDUAL)


class RRDB(nn.Module):
    """Three dense blocks with a scaled residual around them."""

    def __init__(self, feats: int, growth: int) -> None:
        super().__init__()
        self.rdb1 = DenseBlock(feats, growth)
        self.rdb2 = DenseBlock(feats, growth)
        self.rdb3 = DenseBlock(feats, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.rdb3(self.rdb2(self.rdb1(x))), alpha=_RESIDUAL)


class RRDBNet(nn.Module):
    """RRDBNet x4.

    Args:
        blocks: number of RRDB blocks (23 for x4plus, 6 for the anime model).
        feats: feature channels (64).
        growth: channels added by each dense conv (32).
        in_ch, out_ch: image channels (3, RGB).

    Shape:
        ``(B, in_ch, H, W)`` in [0, 1] -> ``(B, out_ch, 4H, 4W)``, nominally in [0, 1].
    """

    scale = 4

    def __init__(self, blocks: int = 23, feats: int = 64, growth: int = 32, in_ch: int = 3, out_ch: int = 3) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(in_ch, feats, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(feats, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up2 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_hr = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_last = nn.Conv2d(feats, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE, inplace=True)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE, inplace=True)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), _SLOPE, inplace=True))
