"""What every upscaling method is: the contract between the pipeline and a method.

A method never sees timestamps, queues or files. The pipeline hands it windows of
``2 * radius + 1`` consecutive frames (fewer frames never: windows are padded at
the ends of the video and at scene cuts) and takes back one upscaled frame each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Window:
    """The input of one method call.

    Attributes:
        frames: ``(N, C, H, W)`` with ``N == 2 * radius + 1``, float in [0, 1], on the
            method's device and in its dtype.
        ref: index in ``frames`` of the frame being upscaled: ``radius`` for a centred
            window, ``N - 1`` for a causal one (live streams).
        indices: decode index of the frame in each slot; a frame repeated by padding
            (ends of the video, scene cuts) appears with the same index more than once.
            Methods key per-frame caches (flows, converted planes) on it.
        pts: presentation timestamp of the frame in each slot, in the source's time base
            (``None`` where the source carries no timing); unlike ``indices``, the same in every
            run over the same source, so files written per frame are named by it.
    """

    frames: torch.Tensor
    ref: int
    indices: tuple[int, ...] = ()
    pts: tuple[int | None, ...] = ()


class Method:
    """Base class of upscaling methods.

    Subclasses set ``scale`` and ``radius`` and implement :meth:`__call__`. Methods
    that gain from seeing many windows at once (batching, overlapping copies with
    compute, reusing optical flow between neighbouring windows) override
    :meth:`stream` instead; the pipeline always calls :meth:`stream`.

    Attributes:
        name: registry name.
        scale: integer upscaling factor of the method's natural output.
        radius: frames used on each side of the reference (0 for per-frame methods).
        causal: when true the window holds the reference and the ``2 * radius`` frames
            before it (live streams: no waiting for future frames).
        device: torch device the method computes on.
        dtype: floating dtype the method computes in.
    """

    name: str = ""
    scale: int = 2
    radius: int = 0
    causal: bool = False
    #: True when the method can take the decoder's integer frames (uint8/uint16, 0..peak)
    #: as they are and return integers of the same type: no float conversion either way.
    integer_io: bool = False
    #: True when every output sample is a weighted sum of input samples with weights summing to
    #: one (interpolation): the method then commutes with the affine map between a limited-range
    #: source's coded and nominal levels (:class:`~vsr.io.color.Levels`), so with ``integer_io``
    #: it takes integer frames in coded levels as they are and keeps super-blacks and super-whites.
    linear: bool = False
    #: True when a GPU speeds the method up enough to reserve one for it: a distributed task
    #: asks its cluster for a GPU only for such methods, unless a CUDA device is named.
    wants_gpu: bool = True

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> Method:
        """Move the method to ``device`` (and ``dtype``); returns ``self``."""
        import torch

        self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        return self

    #: ``(H, W)`` the user asked for (``--size``); methods that can resample straight to
    #: it (interpolation) honour it, the pipeline resizes the output of the others.
    target_size: tuple[int, int] | None = None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output size ``(H_out, W_out)`` for an input of ``(height, width)``."""
        return height * self.scale, width * self.scale

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        """Upscale ``frames[ref]`` using its neighbours.

        Args:
            frames: ``(N, C, H, W)`` float in [0, 1], ``N == 2 * radius + 1``.
            ref: index of the frame to upscale.

        Returns:
            ``(C, H_out, W_out)`` float, nominally in [0, 1] (the encoder clamps).
        """
        raise NotImplementedError

    def stream(self, windows: Iterable[Window]) -> Iterator[torch.Tensor]:
        """Upscale a stream of windows, yielding one ``(C, H_out, W_out)`` frame per window, in order."""
        for window in windows:
            yield self(window.frames, window.ref)

    def describe(self) -> dict[str, object]:
        """Parameters of this method instance, for reports and forensic records."""
        return {"name": self.name, "scale": self.scale, "radius": self.radius}
