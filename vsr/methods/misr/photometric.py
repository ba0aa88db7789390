"""Brightness matching of aligned neighbours to the reference, before fusion.

Along a motion trajectory the same scene point can change brightness from frame to frame
(auto-exposure, light, vignetting under a pan). Fused as they are, a neighbour's samples then
pull the whole estimate towards their brightness: on clean, flat pictures that costs far more
than the neighbours' detail gains. The reference alone already fixes the picture's low
frequencies; the neighbours are only needed for the aliased high ones. So each neighbour's
smooth difference to the reference (confidence-weighted, Gaussian-smoothed) is removed.

Except where a neighbour's pixel is at rest (exactly on its own grid point, as
:func:`vsr.methods.misr.flow.still_motion` leaves it) and identical to the reference's: there it
is the same sample, with no brightness difference to remove. On grainy film such pixels are
the blocks the coder left untouched; a smoothed offset there would carry the grain and flicker
of the pixels around into them, and the block would change from frame to frame where the
source does not.
"""

from __future__ import annotations

import torch

from vsr.methods.misr.flow import warp_bicubic
from vsr.methods.misr.fuse import correlate, gaussian_taps


def match_brightness(planes: torch.Tensor, pos: torch.Tensor, conf: torch.Tensor, sigma: float) -> torch.Tensor:
    """Neighbours with their smooth difference to the reference removed.

    Args:
        planes: ``(K, C, h, w)`` float planes, reference first.
        pos: ``(K, h, w, 2)`` float positions ``(x, y)`` of each pixel in the reference grid.
        conf: ``(K, h, w)`` weight of each sample in [0, 1]; the difference is measured where
            it is high and spread by the smoothing elsewhere.
        sigma: Gaussian standard deviation of the smoothing, low-resolution pixels; 0 returns
            ``planes`` unchanged.

    Returns:
        ``(K, C, h, w)``: ``planes`` itself when nothing is matched (one frame, or
        ``sigma`` 0); otherwise float32, the reference as it was and each neighbour minus its
        smoothed difference to the reference resampled at its positions (none on its pixels
        at rest and identical to the reference's).
    """
    k = planes.shape[0]
    if k == 1 or sigma <= 0:
        return planes
    planes = planes.float()
    pos = pos.to(planes.device, torch.float32)
    conf = conf.to(planes.device, torch.float32)
    warped = warp_bicubic(planes[0], pos[1:])
    taps, start = gaussian_taps(sigma, planes.device, torch.float32)
    if planes.device.type == "cpu":
        return _match_compiled(planes.contiguous(), warped.contiguous(), pos.contiguous(), conf.contiguous(), taps, start)
    return _match_torch(planes, warped, pos, conf, taps, start)


def _match_torch(planes: torch.Tensor, warped: torch.Tensor, pos: torch.Tensor, conf: torch.Tensor,
                 taps: torch.Tensor, start: int) -> torch.Tensor:
    """:func:`match_brightness`'s steps with torch operations, on any device; ``warped`` is the
    reference at the neighbours' positions, ``taps`` and ``start`` the smoothing's."""
    k, c, h, w = planes.shape
    weight = conf[1:, None]
    diff = planes[1:] - warped
    ys = torch.arange(h, device=planes.device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=planes.device, dtype=torch.float32)
    # 1e-4: well under a 10-bit level, over the rounding of grid_sample's normalised positions.
    same = (pos[1:, ..., 0] == xs) & (pos[1:, ..., 1] == ys) & (diff.abs().amax(1) <= 1e-4)
    diff.mul_(weight)
    # Neighbours and channels stacked as the images of one correlation.
    num = correlate(torch.cat([diff.reshape(-1, h, w), weight.reshape(-1, h, w)]), taps, start)
    offset = num[: (k - 1) * c].reshape(k - 1, c, h, w) / num[(k - 1) * c:].reshape(k - 1, 1, h, w).add(1e-3)
    offset.masked_fill_(same[:, None], 0)
    return torch.cat([planes[:1], planes[1:] - offset])


def _match_compiled(planes: torch.Tensor, warped: torch.Tensor, pos: torch.Tensor, conf: torch.Tensor,
                    taps: torch.Tensor, start: int) -> torch.Tensor:
    """:func:`match_brightness`'s steps around the smoothing in two compiled passes
    (:func:`.kernels.brightness_residuals`, :func:`.kernels.brightness_apply`); contiguous
    float32 CPU tensors, ``warped`` the reference at the neighbours' positions."""
    from vsr.methods.misr import kernels

    k, c, h, w = planes.shape
    stack = torch.empty((k - 1) * (c + 1), h, w)
    same = torch.empty(k - 1, h, w, dtype=torch.bool)
    kernels.brightness_residuals(planes.numpy(), warped.numpy(), pos.numpy(), conf.numpy(), stack.numpy(),
                                 same.numpy())
    out = torch.empty_like(planes)
    kernels.brightness_apply(planes.numpy(), correlate(stack, taps, start).numpy(), same.numpy(), out.numpy())
    return out
