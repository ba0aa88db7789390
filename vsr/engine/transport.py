"""The one device transport: frames to the method's device, results back to the host.

On CUDA, host frames are copied into a ring of page-locked buffers and uploaded on an upload
stream; the method computes on a compute stream; results are downloaded into page-locked
buffers on a download stream. Events order the three, so the upload of the next batch and the
download of the previous one overlap the compute of the current one; one result (or one
batch) is kept in flight ahead of the consumer, and results come out in order. Integer
frames cross the bus as they are (1 or 2 bytes a sample) and float results are quantized on
the device before the download.

With YUV formats given, frames may arrive as packed YUV planes (``(1, rows, W)``, see
:mod:`vsr.io.yuv`): they cross the bus as decoded and become RGB on the device, with bicubic
chroma at the stream's siting; and results leave as packed planes of the output's format,
converted on the device, so the host has no colour conversion left to do.

On the CPU the same calls run as a plain loop: nothing is copied, nothing waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from vsr.io.yuv import pack, rgb_to_yuv, unpack, yuv_to_rgb
from vsr.methods.base import Window, channels_innermost
from vsr.methods.samples import from_unit_float, to_unit_float

if TYPE_CHECKING:
    import torch

    from vsr.io.yuv import YuvFormat


class Transport:
    """Uploads, compute and downloads for a method on ``device``.

    Args:
        device: the method's device; on anything but CUDA the transport is a plain loop.
        slots: page-locked upload buffers kept for reuse.
        planes_in: the format of frames that arrive as packed YUV planes (asked when the first
            such frame is uploaded: a decoder settles it at its first frame), or ``None``.
        planes_out: the format to hand results over in, as packed YUV planes, or ``None``: RGB.

    Attributes:
        ring: the upload buffers (:class:`PinnedRing`); ``None`` off CUDA.
    """

    def __init__(self, device: torch.device | str, slots: int = 2,
                 planes_in: Callable[[], YuvFormat | None] | None = None, planes_out: YuvFormat | None = None) -> None:
        import torch

        self.planes_in = planes_in
        self.planes_out = planes_out
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.ring: PinnedRing | None = None
        self._frames: dict[int, torch.Tensor] = {}  # decode index -> the frame on the device
        if self.cuda:
            self._start_streams(slots)

    def _start_streams(self, slots: int) -> None:
        import torch

        self.cuda = True
        self.upload_stream, self.compute_stream, self.download_stream = (
            torch.cuda.Stream(self.device) for _ in range(3))
        # The method's weights were moved on the default stream; the new streams do not wait for it.
        self.compute_stream.wait_stream(torch.cuda.current_stream(self.device))
        self.ring = PinnedRing(slots)

    # -- uploads -------------------------------------------------------------------------------

    def upload(self, frames: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``frames`` on the device, ready for work queued on the compute stream after this call.

        Args:
            frames: ``(..., C, H, W)`` on any device, integer or float, in any layout (the
                layout is kept: channels-last views of decoded frames cross as one copy).
            dtype: float dtype to convert integer frames to (to [0, 1]) once on the device;
                ``None`` leaves them as they are.

        Returns:
            The frames on the device (unchanged off CUDA, apart from ``dtype``).
        """
        import torch

        if not self.cuda:
            return frames if dtype is None else to_unit_float(frames, self.device, dtype)
        if frames.device.type == "cpu":
            host = self.ring.take(frames)
            with torch.cuda.stream(self.upload_stream):
                x = torch.empty_like(host, device=self.device).copy_(host, non_blocking=True)
                uploaded = _event()
                uploaded.record(self.upload_stream)
            self.ring.release(host, uploaded)
            self.compute_stream.wait_event(uploaded)
            x.record_stream(self.compute_stream)  # freed only once the compute that reads it ended
        else:
            x = frames.to(self.device)
            self.compute_stream.wait_stream(torch.cuda.current_stream(self.device))
        if x.shape[-3] == 1 and self.planes_in is not None:  # packed YUV planes
            fmt = self.planes_in()
            with torch.cuda.stream(self.compute_stream):
                rgb = yuv_to_rgb(*unpack(x.select(-3, 0), fmt), fmt)
                # Rounded to the levels of the decoder's own (integer) RGB, so that a method
                # sees the same frame on either device: networks amplify sub-level differences.
                levels = 255.0 if fmt.bit_depth == 8 else 65535.0
                rgb = rgb.mul_(levels).round_().div_(levels)
                return rgb if dtype is None else rgb.to(dtype)
        if dtype is not None:
            with torch.cuda.stream(self.compute_stream):
                x = to_unit_float(x, self.device, dtype)
        return x

    def windows(self, windows: Iterable[Window], dtype: torch.dtype | None = None) -> Iterator[Window]:
        """The same windows with their frames on the device, each decoded frame uploaded once.

        Frames are keyed by the window's ``indices`` (a window without them is uploaded whole);
        frames older than every slot of the latest window are let go. On CUDA a window's
        ``frames`` may be the tuple of its slots' tensors, unstacked (see
        :class:`~vsr.engine.window.WindowAssembler`): they are stacked on the device.
        """
        import torch

        if not self.cuda:
            for window in windows:
                frames = window.frames
                yield window if dtype is None else Window(to_unit_float(frames, self.device, dtype), window.ref,
                                                          window.indices, window.pts)
            return
        for window in windows:
            if not window.indices:
                frames = window.frames if not isinstance(window.frames, tuple) else torch.stack(window.frames)
                yield Window(self.upload(frames, dtype), window.ref, window.indices, window.pts)
                continue
            for slot, index in enumerate(window.indices):
                if index not in self._frames:
                    self._frames[index] = self.upload(window.frames[slot], dtype)
            oldest = min(window.indices)
            for index in [i for i in self._frames if i < oldest]:
                del self._frames[index]
            with torch.cuda.stream(self.compute_stream):
                frames = torch.stack([self._frames[i] for i in window.indices])
            yield Window(frames, window.ref, window.indices, window.pts)

    # -- compute and downloads -----------------------------------------------------------------

    def map(self, batches: Iterable[torch.Tensor], compute: Callable[[torch.Tensor], torch.Tensor],
            finish: Callable[[torch.Tensor], torch.Tensor] | None = None, dtype: torch.dtype | None = None,
            to_host: torch.dtype | None = None) -> Iterator[torch.Tensor]:
        """``compute`` on each batch, results one frame at a time, in order; one batch in flight.

        Args:
            batches: ``(B, C, H, W)`` frames, host or device.
            compute: ``(B, C, H, W)`` on the device -> ``(B, C', H', W')`` on the device (or on the
                host, e.g. a huge frame assembled there); runs on the compute stream.
            finish: applied to each ``(C', H', W')`` result on the device (a resize), or ``None``.
            dtype: see :meth:`upload`.
            to_host: see :meth:`run`.

        Yields:
            One ``(C', H', W')`` result per frame, as :meth:`run` gives them.
        """

        def groups() -> Iterator[list[torch.Tensor]]:
            for batch in batches:
                out = compute(self.upload(batch, dtype))
                yield [y if finish is None else finish(y) for y in out]

        return self._flow(groups(), to_host)

    def run(self, results: Iterator[torch.Tensor], to_host: torch.dtype | None = None) -> Iterator[torch.Tensor]:
        """Advance ``results`` (a method's stream over :meth:`windows`) on the compute stream and
        bring each result back; one result in flight.

        Args:
            results: ``(C, H, W)`` tensors computed on the device as the iterator is advanced.
            to_host: integer dtype (``torch.uint8``/``torch.uint16``) to quantize float results
                to on the device (:func:`~vsr.methods.samples.from_unit_float`) and download them
                as, into page-locked ``(H, W, C)`` memory; integer results are downloaded as they
                are. With ``planes_out``, results are converted to packed planes instead. ``None``: results stay on the device, ready for the current stream. Off CUDA,
                and where the method assembled a result on the host, results are passed on as
                the method gives them.

        Yields:
            The results in order: ``(C, H, W)`` views of ``(H, W, C)`` host memory (``(1, rows,
            W)`` packed planes with ``planes_out``) with ``to_host``, else tensors on the device.
        """
        return self._flow(([y] for y in results), to_host)

    def _flow(self, groups: Iterator[list[torch.Tensor]], to_host: torch.dtype | None) -> Iterator[torch.Tensor]:
        """Results group by group (a batch's frames), keeping the newest group in flight."""
        import torch

        if not self.cuda:
            for group in groups:
                yield from group
            return
        pending: deque[list[tuple[Any, torch.Tensor]]] = deque()
        while True:
            with torch.cuda.stream(self.compute_stream):
                group = next(groups, None)
                if group is None:
                    break
                if to_host is not None:
                    group = [self._quantize(y, to_host) if y.device == self.device else y for y in group]
                computed = _event()
                computed.record(self.compute_stream)
            pending.append([self._bring_back(y, computed, to_host) for y in group])
            while len(pending) > 1:
                yield from (_ready(item) for item in pending.popleft())
        while pending:
            yield from (_ready(item) for item in pending.popleft())

    def _quantize(self, y: torch.Tensor, to_host: torch.dtype) -> torch.Tensor:
        """A result on the device -> what crosses the bus: packed planes of :attr:`planes_out`
        (``(1, rows, W)``), or integer RGB."""
        if self.planes_out is not None:
            return pack(*rgb_to_yuv(y, self.planes_out))[None]
        return from_unit_float(y, to_host) if y.is_floating_point() else y

    def _bring_back(self, y: torch.Tensor, computed, to_host: torch.dtype | None) -> tuple[Any, torch.Tensor]:
        """Queue ``y``'s way to its consumer; returns the event to wait for and what to hand over."""
        import torch

        if y.device != self.device:  # assembled on the host already (synchronously)
            return None, y
        if to_host is None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(computed)
            y.record_stream(current)
            return computed, y
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            y.record_stream(self.download_stream)
            out = pinned_like(y)
            out.copy_(y, non_blocking=True)
            done = _event()
            done.record(self.download_stream)
        return done, out


def _ready(item: tuple[Any, torch.Tensor]) -> torch.Tensor:
    event, tensor = item
    if event is not None:
        event.synchronize()
    return tensor


class PinnedRing:
    """Reusable page-locked host buffers for uploads; a buffer is reused only after its copy ended.

    Attributes:
        reused: uploads that went through a buffer already allocated.
    """

    def __init__(self, slots: int = 2) -> None:
        self.slots = slots
        self.buffers: deque[tuple[torch.Tensor, Any]] = deque()
        self.reused = 0

    def take(self, frames: torch.Tensor) -> torch.Tensor:
        """A page-locked copy of ``frames`` (same shape, dtype and layout)."""

        def fits(buf: torch.Tensor) -> bool:
            return (buf.shape == frames.shape and buf.dtype == frames.dtype
                    and channels_innermost(buf) == channels_innermost(frames))

        for i, (buf, event) in enumerate(self.buffers):
            if fits(buf) and (event is None or event.query()):
                del self.buffers[i]
                self.reused += 1
                return buf.copy_(frames)
        if len(self.buffers) >= self.slots:
            buf, event = self.buffers.popleft()
            if event is not None:
                event.synchronize()
            if fits(buf):
                self.reused += 1
                return buf.copy_(frames)
        return pinned_like(frames).copy_(frames)

    def release(self, buf: torch.Tensor, event) -> None:
        """Give ``buf`` back; it is reused once ``event`` (its upload) has completed."""
        self.buffers.append((buf, event))


def _event():
    """A CUDA event whose ``synchronize`` sleeps instead of spinning: the decoder and encoder
    threads need the CPU while the method worker waits for the GPU."""
    import torch

    return torch.cuda.Event(blocking=True)


def pinned_like(t: torch.Tensor) -> torch.Tensor:
    """An empty page-locked host tensor of ``t``'s shape, dtype and layout (channels-last or not).

    Decoded frames and quantized outputs are ``(..., C, H, W)`` views of ``(..., H, W, C)``
    memory; a buffer of the same layout makes the copy to or from it one contiguous transfer.
    """
    import torch

    if channels_innermost(t):
        hwc = torch.empty((*t.shape[:-3], *t.shape[-2:], t.shape[-3]), dtype=t.dtype, pin_memory=True)
        return hwc.movedim(-1, -3)
    return torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
