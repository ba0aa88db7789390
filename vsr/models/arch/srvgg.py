"""SRVGGNetCompact, the small network of Real-ESRGAN's ``realesr-animevideov3`` models.

Wang et al., Real-ESRGAN (2021). A plain stack of 3x3 convs with per-channel PReLU, a
pixel shuffle to the output size, plus the nearest-upsampled input (the network learns
the residual). Module names (``body.K``) match the usual layout so saved state dicts
load elsewhere too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style SR network.

    Args:
        convs: number of hidden 3x3 convs after the first (16 for animevideov3).
        feats: feature channels (64).
        upscale: pixel-shuffle factor of the network (4 for every animevideov3 model).
        in_ch, out_ch: image channels.

    Shape:
        ``(B, in_ch, H, W)`` in [0, 1] -> ``(B, out_ch, upscale*H, upscale*W)``.
    """

    def __init__(self, convs: int = 16, feats: int = 64, upscale: int = 4, in_ch: int = 3, out_ch: int = 3) -> None:
        super().__init__()
        self.scale = upscale
        self.margin = convs + 2  # one pixel of context per 3x3 conv
        layers: list[nn.Module] = [nn.Conv2d(in_ch, feats, 3, padding=1), nn.PReLU(feats)]
        for _ in range(convs):
            layers += [nn.Conv2d(feats, feats, 3, padding=1), nn.PReLU(feats)]
        layers.append(nn.Conv2d(feats, out_ch * upscale * upscale, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
