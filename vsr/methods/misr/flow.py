"""Alignment for MISR: dense optical flow between consecutive frames, composed to the reference.

Flow is OpenCV's DIS (Kroeger et al. 2016) on 8-bit luma, computed on CPU threads: cv2
releases the GIL, so the flow of the next window runs while torch fuses the current one.
Each new frame costs one flow pair (to and from its predecessor); the flow from any
neighbour to the reference is the composition of consecutive flows along the window.

Every flow comes with a forward-backward confidence: a point that does not come back to
itself through the flow and its reverse is occluded or mismatched.
"""

from __future__ import annotations

import functools
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PRESETS = ("ultrafast", "fast", "medium", "fine")


def create_dis(preset: str):
    """OpenCV's DIS optical flow (Kroeger et al. 2016) at ``preset``.

    ``"ultrafast"``, ``"fast"`` and ``"medium"`` are OpenCV's presets; all three stop their
    search at half the frame's resolution and scale the flow up. ``"fine"`` is medium's search
    carried down to full resolution: about four times medium's cost, and sub-pixel motion
    measured where it happens (what multi-frame fusion lives on).

    Raises:
        ValueError: ``preset`` is not one of :data:`PRESETS`.
    """
    import cv2

    if preset == "fine":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(0)
        return dis
    return cv2.DISOpticalFlow_create(PRESETS.index(preset))


@dataclass(frozen=True)
class PairFlow:
    """Flow from frame ``a`` to frame ``b`` with its forward-backward confidence.

    Attributes:
        flow: ``(H, W, 2)`` float32, ``(dx, dy)`` in pixels: pixel ``p`` of ``a`` shows at ``p + flow(p)`` in ``b``.
        conf: ``(H, W)`` float32 in [0, 1].
    """

    flow: np.ndarray
    conf: np.ndarray


@dataclass(frozen=True)
class Alignment:
    """Where every pixel of each distinct frame of a window lands in the reference.

    Attributes:
        order: decode indices of the distinct frames, reference first.
        pos: ``(K, H, W, 2)`` float32 ``(x, y)`` positions in the reference's pixel grid.
        conf: ``(K, H, W)`` float32 in [0, 1]: flow confidence x robustness; 0 outside the
            reference frame.
    """

    order: tuple[int, ...]
    pos: np.ndarray
    conf: np.ndarray


@functools.lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel coordinates ``(x, y)``; shared, never written to."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([xs, ys], axis=-1)
    grid.flags.writeable = False
    return grid


@functools.lru_cache(maxsize=8)
def _filled(h: int, w: int, value: float) -> np.ndarray:
    """``(H, W)`` float32 ``value``; shared, never written to."""
    plane = np.full((h, w), value, np.float32)
    plane.flags.writeable = False
    return plane


def _sample(image: np.ndarray, pos: np.ndarray, border_value: float | None) -> np.ndarray:
    """Bilinear ``image`` at ``pos`` (``(H, W, 2)`` x, y); ``border_value=None`` replicates the edge."""
    import cv2

    mode = cv2.BORDER_REPLICATE if border_value is None else cv2.BORDER_CONSTANT
    return cv2.remap(image, pos, None, cv2.INTER_LINEAR, borderMode=mode,
                     borderValue=0.0 if border_value is None else border_value)


def warp_bicubic(image: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Bicubic (``a = -0.75``, edges replicated) ``image`` at each set of positions.

    Args:
        image: ``(C, h, w)`` float32, planar or with its channels interleaved (a channels-last
            view, as networks' outputs are), on any device.
        pos: ``(N, h', w', 2)`` float32 positions ``(x, y)`` in ``image``'s pixels, on its device.

    Returns:
        ``(N, C, h', w')`` float32 on ``image``'s device; on the CPU its channels are
        interleaved in memory where ``image``'s are.
    """
    import torch

    n = pos.shape[0]
    c, h, w = image.shape
    if image.device.type == "cpu":
        import cv2

        # OpenCV's bicubic is grid_sample's below (same kernel, taps clamped to the image) to
        # 1e-5, without the round trip of the positions through [-1, 1]: twice as fast.
        at = pos.contiguous().numpy()
        size = at.shape[1:3]
        if 1 < c <= 4 and image.permute(1, 2, 0).is_contiguous():
            # Interleaved channels: one remap for all of them, and no copy of the image.
            src = image.permute(1, 2, 0).numpy()
            out = np.empty((n, *size, c), np.float32)
            for i in range(n):
                cv2.remap(src, at[i], None, cv2.INTER_CUBIC, dst=out[i], borderMode=cv2.BORDER_REPLICATE)
            return torch.from_numpy(out).permute(0, 3, 1, 2)
        src = image.contiguous().numpy()
        out = np.empty((n, c, *size), np.float32)
        for i in range(n):
            for j in range(c):
                cv2.remap(src[j], at[i], None, cv2.INTER_CUBIC, dst=out[i, j], borderMode=cv2.BORDER_REPLICATE)
        return torch.from_numpy(out)
    import torch.nn.functional as F

    grid = torch.stack([pos[..., 0] * (2 / max(w - 1, 1)) - 1, pos[..., 1] * (2 / max(h - 1, 1)) - 1], -1)
    return F.grid_sample(image[None].expand(n, -1, -1, -1), grid, mode="bicubic", padding_mode="border",
                         align_corners=True)


def _zero_outside(conf: np.ndarray, pos: np.ndarray) -> None:
    """Set ``conf`` (C-contiguous) to 0, in place, where positions ``(x, y)`` fall off the ``(H, W)``
    frame (by more than half a pixel; NaN positions count as off)."""
    import cv2

    h, w = pos.shape[:2]
    outside = cv2.bitwise_not(cv2.inRange(pos, (-0.5, -0.5), (w - 0.5, h - 0.5)))
    cv2.copyTo(_filled(h, w, 0.0), outside, conf)


def _gaussian_of(err2: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-err2 / (2 sigma^2))`` in place (OpenCV's vectorised exp)."""
    import cv2

    err2 *= -1.0 / (2.0 * sigma * sigma)
    return cv2.exp(err2, dst=err2)


def local_stats(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 mean and standard deviation of a ``(H, W)`` float32 image (edges replicated)."""
    import cv2

    mean = cv2.blur(luma, (3, 3), borderType=cv2.BORDER_REPLICATE)
    var = cv2.blur(luma * luma, (3, 3), borderType=cv2.BORDER_REPLICATE) - mean * mean
    return mean, np.sqrt(np.maximum(var, 0, out=var), out=var)


def robustness(stats: list[tuple[np.ndarray, np.ndarray]], pos: np.ndarray, noise: float, texture: float,
               out: np.ndarray | None = None) -> np.ndarray:
    """Agreement of each aligned sample with the reference, in [0, 1] (Wronski et al. 2019, simplified).

    The local 3x3 mean around a sample is compared with the reference's local mean at the
    sample's position; the tolerance grows with the reference's local standard deviation,
    because aliasing makes honest samples of textured areas differ from the reference.

    Args:
        stats: :func:`local_stats` ``(mean, std)`` of each frame's float luma, reference first.
        pos: ``(K, H, W, 2)`` float32 positions ``(x, y)`` in the reference grid.
        noise: tolerated difference on flat areas (intensity 0..1).
        texture: multiple of the local standard deviation added to the tolerance.
        out: ``(K, H, W)`` float32 weights to multiply in place; ``None`` starts from ones.

    Returns:
        ``out`` (or a new ``(K, H, W)`` float32 array); the reference's row is left as it was.
    """
    if out is None:
        out = np.ones(pos.shape[:3], np.float32)
    ref_mean, ref_std = stats[0]
    for k in range(1, len(stats)):
        at_mean = _sample(ref_mean, pos[k], None)
        at_std = _sample(ref_std, pos[k], None)
        # exp(-(m_k - m_ref)^2 / (2 tol^2)) with tol^2 = noise^2 + (texture std)^2
        diff = stats[k][0] - at_mean
        tol2 = at_std * at_std
        tol2 *= texture * texture
        tol2 += noise * noise
        diff *= diff
        diff /= tol2
        out[k] *= _gaussian_of(diff, 1.0)
    return out


def fb_confidence(forward: np.ndarray, backward: np.ndarray, sigma: float) -> np.ndarray:
    """Forward-backward consistency of ``forward`` given ``backward``.

    Args:
        forward: ``(H, W, 2)`` flow a -> b.
        backward: ``(H, W, 2)`` flow b -> a.
        sigma: tolerated round-trip error in pixels (Gaussian fall-off).

    Returns:
        ``(H, W)`` float32 in [0, 1]: 1 where the round trip returns home, 0 where it leaves the frame.
    """
    h, w = forward.shape[:2]
    target = pixel_grid(h, w) + forward
    trip = _sample(backward, target, None)
    trip += forward
    np.multiply(trip, trip, out=trip)
    conf = _gaussian_of(np.add(trip[..., 0], trip[..., 1]), sigma)
    _zero_outside(conf, target)
    return conf


def unit_luma(luma: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 luma as float32 in [0, 1] (a new array)."""
    out = luma.astype(np.float32)
    out *= 1 / 255
    return out


def rest_error(luma: np.ndarray, ref_luma: np.ndarray) -> np.ndarray:
    """Local (5x5) mean squared difference of two float luma planes at zero motion.

    Symmetric in its arguments, so a pair of frames needs it once whichever is the reference.

    Args:
        luma, ref_luma: ``(H, W)`` float32 luma in [0, 1] (:func:`unit_luma`).

    Returns:
        ``(H, W)`` float32, edges replicated.
    """
    import cv2

    diff = np.subtract(luma, ref_luma)
    np.multiply(diff, diff, out=diff)
    return cv2.blur(diff, (5, 5), dst=diff, borderType=cv2.BORDER_REPLICATE)


def still_motion(luma: np.ndarray, ref_luma: np.ndarray, pos: np.ndarray, conf: np.ndarray,
                 tolerance: float, rest: np.ndarray | None = None) -> np.ndarray:
    """Put back at rest the pixels that match the reference at least as well without motion.

    Optical flow on flat or noisy areas that do not move returns small random vectors; fused,
    they scatter the samples of a still picture differently in every window, and the
    output boils where the input is still. Where the local (5x5) mean squared difference to
    the reference at zero motion is no more than the one along the flow plus
    ``tolerance**2``, the pixel is taken as still: its position becomes its own grid point and
    its confidence 1.

    Args:
        luma, ref_luma: ``(H, W)`` luma of the frame and of the reference: uint8, or float32 in
            [0, 1] (:func:`unit_luma`).
        pos: ``(H, W, 2)`` float32 positions of the frame's pixels in the reference; updated in place.
        conf: ``(H, W)`` float32 confidence; updated in place.
        tolerance: intensity (0..1) by which the zero-motion match may be worse.
        rest: :func:`rest_error` of the two, when already known; ``None`` computes it.

    Returns:
        ``(H, W)`` bool, the pixels set at rest.

    Raises:
        ValueError: ``pos`` or ``conf`` is not C-contiguous (it could not be updated in place).
    """
    import cv2

    if not (pos.flags.c_contiguous and conf.flags.c_contiguous):
        raise ValueError("still_motion updates pos and conf in place: pass C-contiguous arrays")
    frame = unit_luma(luma) if luma.dtype == np.uint8 else luma
    ref = unit_luma(ref_luma) if ref_luma.dtype == np.uint8 else ref_luma
    if rest is None:
        rest = rest_error(frame, ref)
    moved = _sample(ref, pos, None)
    np.subtract(frame, moved, out=moved)
    np.multiply(moved, moved, out=moved)
    cv2.blur(moved, (5, 5), dst=moved, borderType=cv2.BORDER_REPLICATE)
    moved += tolerance * tolerance
    still = np.less_equal(rest, moved)
    mask = still.view(np.uint8)  # OpenCV's masked copies are several times faster than numpy's
    cv2.copyTo(pixel_grid(*still.shape), mask, pos)
    cv2.copyTo(_filled(*still.shape, 1.0), mask, conf)
    return still


class FlowBank:
    """Consecutive-frame flows keyed by decode index, computed on a background thread.

    Args:
        preset: DIS preset, one of :data:`PRESETS` (see :func:`create_dis`).
        fb_sigma: forward-backward tolerance in pixels.
        robust, robust_texture: tolerances of :func:`robustness`.
        threads: worker threads for flow (one keeps a core free for the fusion).
        still: tolerance (intensity 0..1) of :func:`still_motion`; 0 keeps every flow as it is.
    """

    def __init__(self, preset: str = "fast", fb_sigma: float = 0.5, threads: int = 1,
                 robust: float = 0.05, robust_texture: float = 0.5, still: float = 0.0) -> None:
        self.preset = preset
        self.fb_sigma = fb_sigma
        self.robust = robust
        self.robust_texture = robust_texture
        self.still = still
        self._local = threading.local()
        self._lock = threading.Lock()  # two threads may add frames and ask for pairs (misr+NET --temporal)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="misr-flow")
        self._luma: dict[int, np.ndarray] = {}
        self._pairs: dict[tuple[int, int], Future] = {}
        self._stats: dict[int, Future] = {}
        self._rest: dict[tuple[int, int], np.ndarray] = {}

    def _dis(self):
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = create_dis(self.preset)
            self._local.dis = dis
        return dis

    def add(self, index: int, luma: np.ndarray) -> None:
        """Register frame ``index`` with its ``(H, W)`` uint8 luma (ignored if already known)."""
        with self._lock:
            if index not in self._luma:
                self._luma[index] = np.ascontiguousarray(luma)
                self._stats[index] = self._pool.submit(self._frame_stats, index)

    def _frame_stats(self, index: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The frame's luma in [0, 1] and its :func:`local_stats`, once per frame."""
        luma = unit_luma(self._luma[index])
        return luma, local_stats(luma)

    def _rest_error(self, a: int, b: int) -> np.ndarray:
        """:func:`rest_error` of frames ``a`` and ``b``, once per pair (it is symmetric)."""
        key = (min(a, b), max(a, b))
        rest = self._rest.get(key)
        if rest is None:
            rest = self._rest[key] = rest_error(self._stats[a].result()[0], self._stats[b].result()[0])
        return rest

    def _compute_pair(self, a: int, b: int) -> tuple[PairFlow, PairFlow]:
        dis = self._dis()
        la, lb = self._luma[a], self._luma[b]
        fwd = dis.calc(la, lb, None)
        bwd = dis.calc(lb, la, None)
        return (PairFlow(fwd, fb_confidence(fwd, bwd, self.fb_sigma)),
                PairFlow(bwd, fb_confidence(bwd, fwd, self.fb_sigma)))

    def _pair_future(self, a: int, b: int) -> Future:
        key = (min(a, b), max(a, b))
        with self._lock:
            fut = self._pairs.get(key)
            if fut is None:
                fut = self._pool.submit(self._compute_pair, *key)
                self._pairs[key] = fut
        return fut

    def flow(self, a: int, b: int) -> PairFlow:
        """Flow from frame ``a`` to frame ``b`` (both registered); blocks until computed."""
        fwd, bwd = self._pair_future(a, b).result()
        return fwd if a < b else bwd

    def submit_alignment(self, chain: tuple[int, ...], ref: int) -> Future:
        """Start aligning a window on the flow thread.

        Args:
            chain: decode indices of the window's distinct frames in slot order (no
                consecutive repeats), each registered with :meth:`add`.
            ref: position in ``chain`` of the reference.

        Returns:
            a future of :class:`Alignment`.
        """
        for a, b in itertools.pairwise(chain):
            self._pair_future(a, b)
        return self._pool.submit(self._align, chain, ref)

    def _align(self, chain: tuple[int, ...], ref: int) -> Alignment:
        h, w = self._luma[chain[ref]].shape
        grid = pixel_grid(h, w)
        order = [chain[ref]] + [index for k, index in enumerate(chain) if k != ref]
        pos = np.empty((len(chain), h, w, 2), np.float32)
        conf = np.empty((len(chain), h, w), np.float32)
        pos[0] = grid
        conf[0] = 1
        row = 1
        for k in range(len(chain)):
            if k == ref:
                continue
            step = 1 if k < ref else -1
            first = self.flow(chain[k], chain[k + step])
            np.add(grid, first.flow, out=pos[row])
            conf[row] = first.conf
            for j in range(k + step, ref, step):
                pair = self.flow(chain[j], chain[j + step])
                conf[row] *= _sample(pair.conf, pos[row], 0.0)
                pos[row] += _sample(pair.flow, pos[row], None)
            _zero_outside(conf[row], pos[row])
            if self.still > 0:
                a, b = chain[k], chain[ref]
                still_motion(self._stats[a].result()[0], self._stats[b].result()[0], pos[row], conf[row],
                             self.still, rest=self._rest_error(a, b))
            row += 1
        robustness([self._stats[i].result()[1] for i in order], pos, self.robust, self.robust_texture, out=conf)
        return Alignment(tuple(order), pos, conf)

    def evict(self, keep_from: int) -> None:
        """Forget frames and flows with decode index below ``keep_from``.

        Called from the consumer's thread while the flow thread may add entries: each dict is
        snapshotted (``list``, atomic) before it is walked."""
        for index in [i for i in list(self._luma) if i < keep_from]:
            del self._luma[index]
        for key in [k for k in list(self._pairs) if k[0] < keep_from]:
            del self._pairs[key]
        for index in [i for i in list(self._stats) if i < keep_from]:
            del self._stats[index]
        for key in [k for k in list(self._rest) if k[0] < keep_from]:
            del self._rest[key]

    def close(self) -> None:
        """Stop the flow thread (pending work is finished first)."""
        self._pool.shutdown(wait=True)
