"""``Upscaler``: a method loaded once and kept open, fed frames one by one or whole files.

>>> import numpy as np, vsr
>>> with vsr.Upscaler("bicubic", scale=2, device="cpu") as up:
...     out = up(np.zeros((90, 160, 3), np.uint8))
>>> out.shape, out.dtype
((180, 320, 3), dtype('uint8'))
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Self

from vsr.errors import ConfigError, InputError
from vsr.methods.base import Method

if TYPE_CHECKING:
    from vsr.engine.queues import RunStats
    from vsr.types import Frame

_END = object()  # ends the current sequence of frames
_STOP = object()  # ends the worker
_IDLE = object()  # the worker waits for the next frame: all that can come out has
_ENDED = object()  # the worker finished a sequence


@dataclass(frozen=True)
class _Kind:
    """What the caller's frames are, so that outputs come back as the same: numpy or torch,
    ``(H, W, C)`` or ``(C, H, W)``, dtype and device, and the size every frame must have."""

    numpy: bool
    channels_last: bool
    dtype: Any
    device: Any
    size: tuple[int, int]


class Upscaler:
    """An upscaling method, loaded once, taking frames one by one (or files) until closed.

    ``push(frame)`` takes frames of one clip in order and returns those upscaled frames that are
    ready; ``flush()`` ends the clip and returns the rest (the next ``push`` starts a new clip).
    Frames come out in order, one per frame pushed. A frame is ready once the frames its window
    needs have been pushed: for a centred multi-frame method (misr, window ``2r + 1``) that is
    ``r`` frames later (:attr:`latency`); a causal window or a per-frame method needs none.
    A method that works on several frames at once (misr fuses up to ``threads`` windows in
    parallel on the CPU, a network may batch small frames) can hold that many more until the
    next push or ``flush()``.

    Frames are numpy arrays ``(H, W, 3)`` or torch tensors ``(C, H, W)`` or ``(H, W, C)`` (a
    ``(3, H, 3)`` tensor is read as ``(C, H, W)``), RGB, ``uint8`` (0..255), ``uint16``
    (0..65535) or floating point (0..1); what comes back has the kind, layout, dtype and device
    of the frames pushed, integers rounded as a file run rounds them, floats clipped to [0, 1].
    All frames of a clip have one size.

    The work runs on one thread of the Upscaler's own, in inference mode with the thread count
    the caller had when it was made; the caller's torch settings (thread count, grad mode,
    default dtype) are never changed. An Upscaler is for one caller thread at a time.

    Args:
        method: a registered name (``vsr methods``) or a :class:`~vsr.methods.base.Method`.
        scale: upscaling factor; ``None``: the method's default.
        params: the method's parameters: a mapping or its parameter dataclass
            (``vsr methods NAME`` lists them).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Raises:
        ConfigError: unknown method, scale or parameter. ModelError: weights unavailable.

    Example::

        with vsr.Upscaler("misr", scale=2) as up:
            for image in images:
                for out in up.push(image):
                    show(out)
            for out in up.flush():
                show(out)
    """

    def __init__(self, method: str | Method = "misr", scale: int | None = None, *,
                 params: Mapping[str, Any] | Any = None, device: str | None = "auto") -> None:
        import torch

        from vsr.methods.build import build_method

        #: The loaded :class:`~vsr.methods.base.Method`.
        self.method = build_method(method, scale, params, device)
        self._in: queue.Queue = queue.Queue()
        self._out: queue.Queue = queue.Queue()
        self._kind: _Kind | None = None  # of the clip being pushed; None between clips
        self._pushed = 0
        self._closed = False
        #: The frames a ``with`` block left unflushed, upscaled when it ended.
        self.rest: list[Any] = []
        self._worker = threading.Thread(target=self._work, args=(torch.get_num_threads(),),
                                        name="vsr-upscaler", daemon=True)
        self._worker.start()

    @property
    def latency(self) -> int:
        """Frames pushed after a frame before it can come out: the window's radius, 0 if causal."""
        return 0 if self.method.causal else self.method.radius

    # -- frames --------------------------------------------------------------------------------

    def push(self, frame: Any) -> list[Any]:
        """Add the next frame of the clip; returns the upscaled frames now ready, in order.

        Raises:
            InputError: not an RGB image, or not the size (or kind) of the clip's first frame.
            ConfigError: the Upscaler is closed.
            Any error of the method, as it raised it.
        """
        self._check_open()
        self._in.put(self._frame(frame))
        return self._collect(_IDLE)

    def flush(self) -> list[Any]:
        """End the clip: the upscaled frames not given out yet, in order (``[]`` if none)."""
        self._check_open()
        if self._kind is None:
            return []
        self._in.put(_END)
        try:
            return self._collect(_ENDED)
        finally:
            self._kind, self._pushed = None, 0

    def __call__(self, image: Any) -> Any:
        """Upscale one image on its own (a clip of one frame): push, flush, the one output.

        Raises:
            ConfigError: frames pushed and not flushed yet.
        """
        if self._kind is not None:
            raise ConfigError("frames were pushed and not flushed: call flush() before upscaling an image on its own")
        ready = self.push(image) + self.flush()
        return ready[0]

    # -- files ---------------------------------------------------------------------------------

    def file(self, source: str, output: str, **options: Any) -> RunStats:
        """Upscale a file or stream with the loaded method: :func:`vsr.upscale` (same options,
        except ``method``, ``scale``, ``params`` and ``device``, which are the Upscaler's).

        Raises:
            ConfigError: one of those options given, or frames pushed and not flushed.
            As :func:`vsr.upscale`.
        """
        from vsr.api import upscale

        self._check_open()
        fixed = sorted({"method", "scale", "params", "device"} & set(options))
        if fixed:
            raise ConfigError(f"Upscaler.file takes no {', '.join(fixed)}: the Upscaler's method is loaded already")
        if self._kind is not None:
            raise ConfigError("frames were pushed and not flushed: call flush() before running a file")
        target = self.method.target_size
        try:
            return upscale(source, output, self.method, device=str(self.method.device), **options)
        finally:
            self.method.target_size = target  # a size= of this run is not the Upscaler's

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> list[Any]:
        """Flush the clip (returning its last frames) and stop the worker; closing twice is a no-op."""
        if self._closed:
            return []
        try:
            rest = self.flush()
        finally:
            self._closed = True
            self._in.put(_STOP)
            self._worker.join()
        return rest

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.rest = self.close()
            return
        with contextlib.suppress(Exception):  # the error that left the block is the one to see
            self.close()

    # -- inside --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this Upscaler is closed; make a new one")

    def _frame(self, image: Any) -> Frame:
        """``image`` as the next :class:`~vsr.types.Frame` of the clip ``(C, H, W)``."""
        import numpy as np
        import torch

        from vsr.types import Frame

        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[-1] != 3:
                raise InputError(f"a numpy frame must be (H, W, 3) RGB; got shape {image.shape}")
            data = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            channels_last, numpy = True, True
        elif isinstance(image, torch.Tensor):
            if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
                raise InputError(f"a tensor frame must be (3, H, W) or (H, W, 3) RGB; got shape {tuple(image.shape)}")
            channels_last, numpy = image.shape[0] != 3, False
            data = image.permute(2, 0, 1) if channels_last else image
        else:
            raise InputError(f"a frame must be a numpy array or a torch tensor; got {type(image).__name__}")
        if data.dtype not in (torch.uint8, torch.uint16) and not data.is_floating_point():
            raise InputError(f"frames must be uint8, uint16 or floating point (0..1); got {data.dtype}")
        kind = _Kind(numpy, channels_last, image.dtype, None if numpy else image.device, tuple(data.shape[-2:]))
        if self._kind is None:
            self._kind = kind
        elif kind != self._kind:
            was, now = self._kind, kind
            if was.size != now.size:
                raise InputError(f"frame {self._pushed} is {now.size[1]}x{now.size[0]}, the frames before it "
                                 f"{was.size[1]}x{was.size[0]}: call flush() between clips of different sizes")
            raise InputError(f"frame {self._pushed} is not of the kind of the frames before it (numpy or torch, "
                             "layout, dtype, device): call flush() between clips of different kinds")
        if data.is_floating_point() and data.dtype != torch.float32:
            data = data.float()
        frame = Frame(data=data, pts=self._pushed, time_base=Fraction(1), index=self._pushed)
        self._pushed += 1
        return frame

    def _collect(self, until: object) -> list[Any]:
        ready = []
        while True:
            item = self._out.get()
            if item is until:
                return ready
            if isinstance(item, BaseException):
                self._kind, self._pushed = None, 0  # the worker has left the clip
                raise item
            ready.append(item)

    def _frames(self, first: Frame) -> Iterator[Frame]:
        """The clip's frames as they are pushed; says when it waits for the next one."""
        item = first
        while True:
            yield item
            if self._in.empty():
                self._out.put(_IDLE)
            item = self._in.get()
            if item is _END:
                return
            if item is _STOP:  # closed while a clip was open: end it quietly
                self._in.put(_STOP)
                return

    def _work(self, threads: int) -> None:
        """The worker: each clip through the engine's frame loop, outputs converted to the caller's kind."""
        import torch

        from vsr.engine.queues import upscale_frames
        from vsr.engine.scenecut import SceneCutDetector

        torch.set_num_threads(threads)  # this thread's setting only
        while True:
            first = self._in.get()
            if first is _STOP:
                return
            if first is _END:
                self._out.put(_ENDED)
                continue
            kind = self._kind
            try:
                detector = SceneCutDetector() if self.method.radius > 0 else None  # as vsr.frames
                with torch.inference_mode():
                    for _, image in upscale_frames(self._frames(first), self.method, None, detector):
                        self._out.put(_as_kind(image, kind))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                self._out.put(exc)
                _drain_clip(self._in)
                continue
            self._out.put(_ENDED)


def _drain_clip(inbox: queue.Queue) -> None:
    """After a failure, drop what is left of the clip (at most its end mark) so the next push starts a new one."""
    while not inbox.empty():
        item = inbox.get_nowait()
        if item is _STOP:
            inbox.put(_STOP)
            return


def _as_kind(image: Any, kind: _Kind) -> Any:
    """A method's ``(C, H, W)`` output as the caller's frames were: numpy ``(H, W, 3)`` or a tensor
    in their layout; integers as a file run writes them, floats clipped to [0, 1]."""
    import numpy as np
    import torch

    from vsr.engine.window import to_integer_hwc
    from vsr.methods.samples import from_unit_float, to_unit_float

    integer = kind.dtype in (np.uint8, np.uint16, torch.uint8, torch.uint16)
    if integer:
        wide = kind.dtype in (np.uint16, torch.uint16)
        if kind.numpy:
            return to_integer_hwc(image, 16 if wide else 8)
        # Tensors stay where the method left them until the caller's device: no trip through the host.
        if image.is_floating_point():
            image = from_unit_float(image, torch.uint16 if wide else torch.uint8)
        out = image.to(kind.device)
        return out.permute(1, 2, 0) if kind.channels_last else out
    if not image.is_floating_point():
        image = to_unit_float(image, image.device, torch.float32)
    chw = image.float().clamp(0.0, 1.0)
    if kind.numpy:
        return chw.permute(1, 2, 0).cpu().numpy().astype(kind.dtype, copy=False)
    out = chw.to(device=kind.device, dtype=kind.dtype)
    return out.permute(1, 2, 0) if kind.channels_last else out
