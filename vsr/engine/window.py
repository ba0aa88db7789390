"""Turning a stream of frames into the windows a method consumes.

Windows hold ``2 * radius + 1`` frames: centred on the reference for files,
ending at it for live streams (``causal``). At the ends of the video, at
scene cuts and where the picture size changes (adaptive streams, a camera
switching profile), the missing slots repeat the nearest frame of the same
shot, so a window never mixes two shots or two sizes and always has one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from vsr.methods.base import Window
from vsr.methods.samples import from_unit_float, to_unit_float

if TYPE_CHECKING:
    import torch

    from vsr.io.color import Levels
    from vsr.types import Frame


def frame_windows(
    frames: Iterable[Frame],
    radius: int,
    causal: bool = False,
    is_cut: Callable[[Frame], bool] | None = None,
) -> Iterator[tuple[Frame, list[Frame]]]:
    """Group frames into windows, yielding ``(reference, slots)`` in display order.

    Args:
        frames: frames in decode (= presentation) order.
        radius: frames on each side of the reference (``>= 0``).
        causal: windows end at the reference instead of being centred on it.
        is_cut: called once per frame, in order; true when the frame starts a new shot.
            A frame whose ``(H, W)`` differs from the previous frame's starts one too.

    Yields:
        The reference frame and the ``2 * radius + 1`` frames of its window (repeats
        at shot boundaries). Each input frame is the reference of exactly one window.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0; got {radius}")
    if radius == 0:  # every window is one frame: nothing to restart
        for frame in frames:
            if is_cut is not None:
                is_cut(frame)
            yield frame, [frame]
        return
    size = 2 * radius + 1
    shot: list[Frame] = []  # frames of the current shot still needed
    first = 0  # shot position of shot[0]
    pending = 0  # shot position of the next reference to emit

    def slots(ref: int, last: int) -> list[Frame]:
        lo, hi = (ref - 2 * radius, ref) if causal else (ref - radius, ref + radius)
        return [shot[min(max(q, 0), last) - first] for q in range(lo, hi + 1)]

    for frame in frames:
        cut = is_cut(frame) if is_cut is not None else False
        if shot and (cut or shot[-1].data.shape[-2:] != frame.data.shape[-2:]):
            last = first + len(shot) - 1
            while pending <= last:
                yield shot[pending - first], slots(pending, last)
                pending += 1
            shot, first, pending = [], 0, 0
        shot.append(frame)
        last = first + len(shot) - 1
        ready = last if causal else last - radius
        while pending <= ready:
            yield shot[pending - first], slots(pending, last)
            pending += 1
        keep_from = max(0, pending - (2 * radius if causal else radius))
        # Frames before the first one a future window needs can go (keep at least one
        # to clamp against).
        drop = min(keep_from - first, len(shot) - 1)
        if drop > 0:
            del shot[:drop]
            first += drop
        assert len(shot) <= size + 1
    if shot:
        last = first + len(shot) - 1
        while pending <= last:
            yield shot[pending - first], slots(pending, last)
            pending += 1


class WindowAssembler:
    """Convert frames to the method's device and dtype once, and stack them into windows.

    Args:
        device: torch device of the method.
        dtype: floating dtype of the method.
        integer: pass the decoder's integer frames on unconverted (methods with ``integer_io``).
        levels: the frames are in a limited-range source's coded levels: float frames are
            mapped to nominal RGB (values beyond [0, 1] where the source has them).
        stack: stack each window's frames into one ``(N, C, H, W)`` tensor; when false, a
            window's ``frames`` is the tuple of its slots' ``(C, H, W)`` tensors, for a
            transport that uploads each frame once and stacks on the device
            (:meth:`~vsr.engine.transport.Transport.windows`).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, integer: bool = False,
                 levels: Levels | None = None, stack: bool = True) -> None:
        self.stack = stack
        self.device = device
        self.dtype = dtype
        self.integer = integer
        self.levels = levels
        self._cache: dict[int, torch.Tensor] = {}

    def to_float(self, frame: Frame) -> torch.Tensor:
        """``(C, H, W)`` float on the method's device, nominally in [0, 1], converted once per frame.

        With ``integer`` the decoder's integer tensor is passed on unconverted.
        """
        cached = self._cache.get(frame.index)
        if cached is None:
            if self.integer:
                cached = frame.data
            else:
                cached = to_unit_float(frame.data, self.device, self.dtype)
                if self.levels is not None:
                    cached = self.levels.to_nominal(cached)
            self._cache[frame.index] = cached
        return cached

    def assemble(self, slots: list[Frame], ref_slot: int) -> Window:
        """The :class:`Window` for these slots; frames no later window uses are evicted."""
        import torch

        tensors = [self.to_float(f) for f in slots]
        if not self.stack:
            stacked = tuple(tensors)
        else:
            stacked = tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)
        oldest = min(f.index for f in slots)
        for index in [i for i in self._cache if i < oldest]:
            del self._cache[index]
        return Window(frames=stacked, ref=ref_slot, indices=tuple(f.index for f in slots),
                      pts=tuple(f.pts for f in slots))


def to_integer_hwc(image: torch.Tensor, bit_depth: int, levels: Levels | None = None):
    """Float ``(C, H, W)`` in [0, 1] to a numpy ``(H, W, C)`` uint8 (8-bit) or uint16 array.

    Values outside [0, 1] (ringing of sharp kernels) are clipped; rounding is to nearest.
    With ``levels`` the float image is first mapped to the source's coded levels, so what
    lies beyond nominal black and white is clipped only where the code range ends. The
    conversion runs on the tensor's device before the copy to the host. Integer images
    (from methods with ``integer_io``) are passed through.
    """
    import numpy as np
    import torch

    if levels is not None and image.is_floating_point():
        image = levels.to_coded(image)
    hwc = image.permute(1, 2, 0)
    if image.dtype in (torch.uint8, torch.uint16):
        return (hwc if hwc.is_contiguous() else hwc.contiguous()).cpu().numpy()
    if image.device.type != "cpu":
        integer = from_unit_float(image, torch.uint8 if bit_depth <= 8 else torch.uint16)
        return integer.permute(1, 2, 0).cpu().numpy()
    if bit_depth <= 8 and image.dtype == torch.float32 and image.is_contiguous():
        import cv2

        # Planar float: convert each plane, then interleave the bytes (cheaper than interleaving floats).
        return cv2.merge([cv2.convertScaleAbs(cv2.max(plane.numpy(), 0.0), alpha=255.0) for plane in image])
    if not hwc.is_contiguous():
        hwc = hwc.contiguous()
    array = hwc.float().numpy() if hwc.dtype != torch.float32 else hwc.numpy()
    if bit_depth <= 8:
        import cv2

        # max() first: convertScaleAbs would fold negative overshoot back up.
        return cv2.convertScaleAbs(cv2.max(array, 0.0), alpha=255.0)
    return np.clip(array * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
