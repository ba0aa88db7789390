"""waifu2x ``upconv_7``: six unpadded 3x3 convs and a stride-2 transposed conv.

waifu2x (nagadomi, 2015-), the ``upconv_7`` variant. The convs are unpadded, so the
network shrinks its input by 14 pixels (7 each side) while doubling it:
``(H, W) -> (2(H - 14), 2(W - 14))``. :class:`UpConv7` pads its input by 7 replicated
pixels first, so as a module it maps ``(H, W)`` to ``(2H, 2W)``; :attr:`margin` says
how far any output pixel sees, which is what a tile needs as overlap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CHANNELS = (16, 32, 64, 128, 128, 256)
_SLOPE = 0.1


class UpConv7(nn.Module):
    """waifu2x upconv_7 x2.

    Args:
        in_ch, out_ch: image channels (3, RGB).
        pad_input: replicate-pad the input by :attr:`margin` so the output is exactly 2x the input.

    Shape:
        ``(B, in_ch, H, W)`` in [0, 1] -> ``(B, out_ch, 2H, 2W)`` (``2(H-14), 2(W-14)`` without padding).
    """

    scale = 2
    margin = 7

    def __init__(self, in_ch: int = 3, out_ch: int = 3, pad_input: bool = True) -> None:
        super().__init__()
        self.pad_input = pad_input
        convs = []
        prev = in_ch
        for ch in _CHANNELS:
            convs.append(nn.Conv2d(prev, ch, 3))
            prev = ch
        self.convs = nn.ModuleList(convs)
        self.up = nn.ConvTranspose2d(prev, out_ch, 4, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_input:
            x = F.pad(x, (self.margin,) * 4, mode="replicate")
        for conv in self.convs:
            x = F.leaky_relu(conv(x), _SLOPE, inplace=True)
        return self.up(x)
