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

    from vsr.io.yuv import YuvFormat


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
    #: True when the method resamples a frame's YUV planes itself (:meth:`upscale_planes`): where
    #: the source and the output have the same planar layout, the pipeline then hands it the
    #: decoder's planes and the encoder the planes it returns, with no RGB step on either side.
    planar: bool = False
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

    def upscale_planes(self, planes: torch.Tensor, fmt_in: YuvFormat, fmt_out: YuvFormat,
                       size: tuple[int, int]) -> torch.Tensor:
        """Upscale one frame's YUV planes (methods with :attr:`planar`).

        Args:
            planes: ``(1, rows, W)`` packed planes (:func:`vsr.io.yuv.pack`) in ``fmt_in``, as
                decoded: uint8 for 8 bits, else uint16.
            fmt_in, fmt_out: the formats of the input and output planes; they differ at most in
                chroma siting.
            size: ``(H_out, W_out)`` of the output picture, even.

        Returns:
            ``(1, rows_out, W_out)`` packed planes in ``fmt_out``, of the input's dtype.
        """
        raise NotImplementedError

    #: True when the method works frame by frame on batches (:meth:`upscale_batch`): the engine then
    #: groups frames with :func:`batches` and runs :meth:`upscale_batch` on them itself.
    batched: bool = False

    def upscale_batch(self, frames: torch.Tensor) -> torch.Tensor:
        """Upscale a batch (methods with :attr:`batched`): ``(B, C, H, W)`` on the method's device
        -> ``(B, C, H_out, W_out)``, of the kind :meth:`__call__` gives."""
        raise NotImplementedError

    def batch_size(self, height: int, width: int) -> int:
        """Frames of ``height`` x ``width`` to put in one :meth:`upscale_batch` (``>= 1``)."""
        return 1

    def stream(self, windows: Iterable[Window]) -> Iterator[torch.Tensor]:
        """Upscale a stream of windows, yielding one ``(C, H_out, W_out)`` frame per window, in order."""
        import torch

        if self.batched:
            with torch.inference_mode():
                for frames in batches(windows, self.batch_size):
                    yield from self.upscale_batch(frames)
            return
        for window in windows:
            yield self(window.frames, window.ref)

    def describe(self) -> dict[str, object]:
        """Parameters of this method instance, for reports and forensic records."""
        return {"name": self.name, "scale": self.scale, "radius": self.radius}


def batches(windows: Iterable[Window], batch_size) -> Iterator[torch.Tensor]:
    """Group consecutive reference frames of the same size into ``(B, C, H, W)`` batches.

    Args:
        windows: one-frame (or any) windows; their reference frames are batched.
        batch_size: ``(H, W) -> int``, frames per batch for that size.

    A single frame is passed on as it is (no copy); frames laid out as ``(H, W, C)`` memory,
    as decoded frames are, are stacked into ``(B, H, W, C)`` memory.
    """
    group: list[torch.Tensor] = []
    limit = 1
    for window in windows:
        frame = window.frames[window.ref : window.ref + 1]
        if group and (frame.shape != group[0].shape or frame.device != group[0].device
                      or frame.dtype != group[0].dtype):
            yield _stack(group)
            group = []
        if not group:
            limit = batch_size(frame.shape[-2], frame.shape[-1])
        group.append(frame)
        if len(group) >= limit:
            yield _stack(group)
            group = []
    if group:
        yield _stack(group)


def _stack(group: list[torch.Tensor]) -> torch.Tensor:
    import torch

    if len(group) == 1:
        return group[0]
    if channels_innermost(group[0]):
        return torch.cat([f.permute(0, 2, 3, 1) for f in group]).permute(0, 3, 1, 2)
    return torch.cat(group)


def channels_innermost(t: torch.Tensor) -> bool:
    """True for ``(..., C, H, W)`` views of ``(..., H, W, C)`` memory (decoded frames, quantized outputs)."""
    return t.dim() >= 3 and t.shape[-3] > 1 and t.stride(-3) == 1
