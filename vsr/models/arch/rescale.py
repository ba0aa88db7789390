"""A network followed by a fixed bicubic resize, as some ncnn graphs end."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Rescaled(nn.Module):
    """Run ``net`` then resize its output by ``factor`` (bicubic, a = -0.75, half-pixel centres).

    The realesr-animevideov3 x2 and x3 graphs are the x4 network plus this resize.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, round(s * factor * H), round(s * factor * W))`` with ``s`` the
        scale of ``net``.
    """

    def __init__(self, net: nn.Module, factor: float) -> None:
        super().__init__()
        self.net = net
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.net(x), scale_factor=self.factor, mode="bicubic", align_corners=False)
