"""Integer samples as decoded (uint8 0..255, uint16 0..65535) and floats in [0, 1], both ways.

Methods compute in floats; the decoder and the encoder's converter speak integers. These two
functions are the one place where one becomes the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def to_unit_float(data: torch.Tensor, device, dtype) -> torch.Tensor:
    """Integer RGB (uint8 0..255, uint16 0..65535) or float to float in [0, 1] on ``device``.

    The integer tensor is moved first, so only 1 or 2 bytes per sample cross the bus.
    The memory layout (e.g. channels-last views of decoded frames) is preserved.
    """
    import torch

    if data.is_floating_point():
        return data.to(device=device, dtype=dtype)
    peak = 255.0 if data.dtype == torch.uint8 else 65535.0
    moved = data.to(device, non_blocking=True)
    if dtype in (torch.float16, torch.bfloat16):  # scaled in float32, rounded once
        return moved.to(torch.float32).mul_(1.0 / peak).to(dtype)
    return moved.to(dtype).mul_(1.0 / peak)


def from_unit_float(image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float ``(..., C, H, W)`` in [0, 1] to integers of ``dtype`` (uint8 0..255, uint16 0..65535).

    The inverse of :func:`to_unit_float`: values are clipped and rounded to nearest (NaN
    becomes 0), on the tensor's device. The result is a ``(..., C, H, W)`` view of channels-last memory, so
    that viewing it as ``(..., H, W, C)`` and copying it to the host moves each byte once.
    """
    import torch

    peak = 255 if dtype == torch.uint8 else 65535
    # float32 whatever the input: 65535 overflows float16, and bfloat16 cannot hold 255 levels.
    hwc = image.movedim(-3, -1).float().mul(peak).add_(0.5).nan_to_num_(nan=0.0).clamp_(0, peak)
    return hwc.to(dtype).contiguous().movedim(-1, -3)
