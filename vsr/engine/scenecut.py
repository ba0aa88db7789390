"""Scene-cut detection, so that multi-frame methods never fuse across a cut.

Each frame is reduced once to a small luma thumbnail and a luma histogram. A cut
is declared when both change a lot at once: the histogram test alone misses cuts
between similar-looking shots, the pixel test alone fires on fast pans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from vsr.io.color import Levels
    from vsr.types import Frame


class SceneCutDetector:
    """Decide, frame by frame, whether a frame starts a new shot.

    Args:
        histogram_threshold: L1 distance between normalised 32-bin luma histograms,
            in [0, 2], above which the histogram test fires.
        pixel_threshold: mean absolute difference of 32x18 luma thumbnails, in [0, 1],
            above which the pixel test fires.
        levels: integer frames are in a limited-range source's coded levels: they are
            compared in nominal levels, as other frames are.
    """

    def __init__(self, histogram_threshold: float = 0.5, pixel_threshold: float = 0.12,
                 levels: Levels | None = None) -> None:
        self.levels = levels
        self.histogram_threshold = histogram_threshold
        self.pixel_threshold = pixel_threshold
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.cuts = 0

    def signature(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Thumbnail ``(18, 32)`` and histogram ``(32,)`` of a ``(3, H, W)`` RGB frame of any dtype."""
        import torch
        import torch.nn.functional as F

        x = data.float()
        if data.dtype == torch.uint8:
            x = x / 255.0
        elif data.dtype == torch.uint16 or data.dtype == torch.int32:
            x = x / 65535.0
        if self.levels is not None and not data.is_floating_point():
            x = self.levels.to_nominal(x)
        luma = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None, None]
        thumb = F.adaptive_avg_pool2d(luma, (18, 32))[0, 0]
        hist = torch.histc(F.adaptive_avg_pool2d(luma, (72, 128)), bins=32, min=0.0, max=1.0)
        return thumb, hist / hist.sum().clamp_min(1)

    def is_cut(self, frame: Frame) -> bool:
        """True when ``frame`` starts a new shot relative to the previous frame given."""
        current = self.signature(frame.data)
        previous, self._previous = self._previous, current
        if previous is None:
            return False
        pixel = (current[0] - previous[0]).abs().mean().item()
        histogram = (current[1] - previous[1]).abs().sum().item()
        cut = pixel > self.pixel_threshold and histogram > self.histogram_threshold
        self.cuts += cut
        return cut
