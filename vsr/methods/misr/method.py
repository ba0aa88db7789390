"""MISR: multi-frame super-resolution by optical-flow alignment and robust fusion.

No learned weights: every output pixel is reconstructed from the samples the window's
frames actually recorded, placed by optical flow (:mod:`.flow`) and fused by kernel
regression and robust back-projection (:mod:`.fuse`). Luma gets the full treatment;
chroma takes the bicubic path by default.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vsr.errors import ConfigError
from vsr.methods.base import Method, Window
from vsr.methods.memory import available_bytes
from vsr.methods.misr.flow import PRESETS
from vsr.methods.params import parse

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vsr.methods.misr.flow import FlowBank

# Full-range BT.601 RGB -> YCbCr (Cb, Cr centred on 0). Proportional to the studio-swing Y
# of the quality protocol, so fusing this Y is fusing the measured one.
_RGB_TO_YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


@functools.cache
def _ycc_to_rgb() -> np.ndarray:
    """The inverse of ``_RGB_TO_YCC``, ``(3, 3)`` float32 (computed in float64 once)."""
    import numpy as np

    return np.linalg.inv(np.array(_RGB_TO_YCC)).astype(np.float32)


@dataclass(frozen=True)
class MisrParams:
    """Parameters of MISR, with their defaults.

    Attributes:
        window: frames fused per output frame (odd, 1..15); 5 = the reference and two on each side.
        causal: the reference is the last frame of the window (live streams: no waiting).
        flow_preset: DIS preset: ``"ultrafast"``, ``"fast"``, ``"medium"`` or ``"fine"`` (medium's
            search carried down to full resolution: finer, four times medium's cost); unset:
            fine at x4 and above, where a tenth of an input pixel is almost half an output pixel
            and the input frames are small, medium below.
        fb_sigma: forward-backward tolerance of the flow, low-resolution pixels; larger accepts more.
        psf: imaging model of the input: ``"bicubic"`` (MATLAB's antialiased bicubic shrink on a
            centred grid: "BI" data and a mild general default) or ``"gaussian"`` (Gaussian blur of
            ``psf_sigma`` then decimation from pixel 0: "BD" data, soft cameras, film).
        psf_sigma: Gaussian PSF standard deviation, in output pixels.
        kr_sigma: kernel-regression Gaussian, in input pixels.
        fallback: weight, in frames, of the bicubic reference in the initial estimate; where
            fewer aligned observations than this support a pixel, it leans to bicubic.
        robust: tolerated intensity difference (0..1) between an aligned sample and the reference
            on flat areas before the sample is rejected (moving objects, occlusions, flow errors).
        robust_texture: multiple of the reference's local standard deviation added to ``robust``.
        brightness_sigma: each neighbour's brightness difference to the reference, smoothed by a
            Gaussian of this many input pixels, is removed before fusion (exposure or light
            changing along the motion); 0 fuses the neighbours as they are.
        still: a neighbour's pixel that matches the reference without motion within this
            intensity (0..1) of how it matches along the flow is taken as not moving (no
            boiling where the picture is still); 0 trusts the flow everywhere.
        iterations: back-projection steps. 0 leaves the kernel-regression estimate, which still
            carries the camera blur and scores below bicubic: keep at least 3.
        step: back-projection step size.
        momentum: Nesterov momentum of the back-projection (0 = plain steepest descent, below 1).
        data_scale: residual (intensity 0..1) beyond which a neighbour's sample stops pulling the
            back-projection at its last step (Lorentzian data term; the reference's own samples
            are quadratic).
        data_scale_start: the Lorentzian's scale at the first step; it narrows geometrically to
            ``data_scale`` by the last (graduated non-convexity: the first steps start from a
            blurred estimate, whose error on textured areas is no outlier); 0, or any value not
            above ``data_scale``, keeps ``data_scale`` throughout.
        btv_weight: weight of the bilateral-TV prior.
        btv_alpha: decay of the bilateral-TV prior with shift distance (0..1).
        btv_radius: largest shift of the bilateral-TV prior, output pixels.
        btv_epsilon: smoothing of the bilateral-TV prior (intensity 0..1): differences well
            below it are pulled gently instead of at full strength, so flat areas do not boil
            with the faintest noise; 0 is the plain L1 prior.
        quant: coding noise the input is expected to carry (intensity 0..1): residuals of the
            data term within it are not followed, so the estimate does not copy blocking and
            ringing of compressed input; 0 for clean input.
        antiring: keep each fused pixel within the range of the reference's 3x3 input pixels
            around it, widened by ``overshoot``: the ringing that back-projection leaves beside a
            strong edge in a flat neighbourhood (the black bars beside a film frame) is cut, so
            it does not flicker as the picture beside it moves.
        overshoot: with ``antiring``, how far a pixel may leave that range: this fraction of the
            range, plus one 8-bit level.
        chroma: ``"bicubic"`` (chroma of the reference, bicubic) or ``"fuse"`` (chroma fused like luma).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` (the device the pipeline gives).
        dtype: ``"float32"`` or ``"float16"``: dtype of the output frames (and of the planes
            handed to the fusion on CUDA). The fusion itself accumulates in float32: splatting
            thousands of weighted samples into one pixel loses too much in half precision.
        evidence: directory for per-frame evidence maps (16-bit PNG named by the frame's pts in
            the source time base, zero-padded to 12 digits, so that runs over parts of one source
            never overwrite each other; value = aligned observations x 1000), or ``None``.
        threads: frames fused at once on the CPU, one thread each; ``None`` for as many as torch
            would use (one per core, unless ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` say
            otherwise, as in a Ray task). Whole frames in parallel beat threads that split each
            operation of one frame: on a busy machine those wait on each other at every step.
    """

    flags: ClassVar[tuple[str, ...]] = ("window", "causal", "evidence")  # those with a flag of their own
    window: int = 5
    causal: bool = False
    flow_preset: str | None = None
    fb_sigma: float = 0.5
    psf: str = "bicubic"
    psf_sigma: float = 1.6
    kr_sigma: float = 0.6
    fallback: float = 0.5
    robust: float = 0.05
    robust_texture: float = 0.5
    brightness_sigma: float = 0.8
    still: float = 0.01
    iterations: int = 6
    step: float = 1.5
    momentum: float = 0.7
    data_scale: float = 0.02
    btv_weight: float = 0.001
    btv_alpha: float = 0.7
    btv_radius: int = 1
    btv_epsilon: float = 0.01
    quant: float = 0.0
    data_scale_start: float = 0.1
    antiring: bool = True
    overshoot: float = 0.5
    chroma: str = "bicubic"
    device: str | None = None
    dtype: str = "float32"
    evidence: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"misr: {what}")

        need(isinstance(self.window, int) and self.window % 2 == 1 and 1 <= self.window <= 15,
             f"window must be an odd whole number from 1 to 15; got {self.window!r}")
        need(isinstance(self.causal, bool), f"causal must be true or false; got {self.causal!r}")
        need(self.flow_preset is None or self.flow_preset in PRESETS,
             f"flow_preset must be one of {', '.join(PRESETS)}; got {self.flow_preset!r}")
        need(self.psf in ("bicubic", "gaussian"), f"psf must be bicubic or gaussian; got {self.psf!r}")
        need(self.chroma in ("bicubic", "fuse"), f"chroma must be bicubic or fuse; got {self.chroma!r}")
        need(self.dtype in ("float32", "float16"), f"dtype must be float32 or float16; got {self.dtype!r}")
        for name in ("fb_sigma", "psf_sigma", "kr_sigma", "robust", "step", "data_scale"):
            value = getattr(self, name)
            need(isinstance(value, int | float) and not isinstance(value, bool) and value > 0,
                 f"{name} must be a positive number; got {value!r}")
        for name in ("fallback", "robust_texture", "brightness_sigma", "btv_weight", "still", "btv_epsilon", "quant",
                     "data_scale_start", "overshoot"):
            value = getattr(self, name)
            need(isinstance(value, int | float) and not isinstance(value, bool) and value >= 0,
                 f"{name} must be a number >= 0; got {value!r}")
        need(isinstance(self.antiring, bool), f"antiring must be true or false; got {self.antiring!r}")
        need(isinstance(self.momentum, int | float) and not isinstance(self.momentum, bool)
             and 0 <= self.momentum < 1, f"momentum must be in [0, 1); got {self.momentum!r}")
        need(isinstance(self.btv_alpha, int | float) and 0 < self.btv_alpha <= 1,
             f"btv_alpha must be in (0, 1]; got {self.btv_alpha!r}")
        need(isinstance(self.iterations, int) and 0 <= self.iterations <= 100,
             f"iterations must be a whole number from 0 to 100; got {self.iterations!r}")
        need(isinstance(self.btv_radius, int) and 1 <= self.btv_radius <= 4,
             f"btv_radius must be a whole number from 1 to 4; got {self.btv_radius!r}")
        need(self.threads is None or (isinstance(self.threads, int) and not isinstance(self.threads, bool)
                                      and self.threads >= 1),
             f"threads must be a whole number >= 1; got {self.threads!r}")
        need(self.device is None or (isinstance(self.device, str) and self.device.split(":")[0] in ("cpu", "cuda")),
             f"device must be cpu or cuda[:N]; got {self.device!r}")


class Misr(Method):
    """Multi-frame super-resolution (see the module docstring).

    Args:
        scale: integer factor, 2 to 8.
        params: :class:`MisrParams`.
    """

    name = "misr"

    def __init__(self, scale: int, params: MisrParams) -> None:
        import torch

        super().__init__()
        self.scale = scale
        if params.flow_preset is None:
            params = dataclasses.replace(params, flow_preset="fine" if scale >= 4 else "medium")
        self.params = params
        self.radius = params.window // 2
        self.causal = params.causal
        if params.device is not None:
            self.device = torch.device(params.device)
        self.dtype = getattr(torch, params.dtype)
        if params.evidence is not None:
            Path(params.evidence).mkdir(parents=True, exist_ok=True)

    def describe(self) -> dict[str, object]:
        """Every parameter of this instance (JSON-able), for reports and forensic records."""
        out: dict[str, object] = {"name": self.name, "scale": self.scale, "radius": self.radius,
                                  "causal": self.causal}
        out["params"] = dataclasses.asdict(self.params)
        out["evidence_unit"] = "aligned observations x 1000 (uint16 PNG named by pts)"
        return out

    # -- the pieces ---------------------------------------------------------------------

    def flow_bank(self):
        """A :class:`~vsr.methods.misr.flow.FlowBank` with this instance's flow parameters."""
        from vsr.methods.misr.flow import FlowBank

        p = self.params
        return FlowBank(p.flow_preset, p.fb_sigma, robust=p.robust, robust_texture=p.robust_texture, still=p.still)

    def _fuse_config(self):
        from vsr.methods.misr.fuse import FuseConfig, make_psf

        p = self.params
        return FuseConfig(scale=self.scale, psf=make_psf(p.psf, self.scale, p.psf_sigma), kr_sigma=p.kr_sigma,
                          fallback=p.fallback,
                          iterations=p.iterations, step=p.step, momentum=p.momentum, data_scale=p.data_scale,
                          btv_weight=p.btv_weight, btv_alpha=p.btv_alpha, btv_radius=p.btv_radius,
                          btv_epsilon=p.btv_epsilon, quant=p.quant,
                          data_scale_start=p.data_scale_start, overshoot=p.overshoot if p.antiring else None)

    def _ycc(self, frames: torch.Tensor) -> torch.Tensor:
        import torch

        m = torch.tensor(_RGB_TO_YCC, device=frames.device, dtype=torch.float32)
        return torch.einsum("ij,njhw->nihw", m, frames.float())

    def _rgb(self, *planes: torch.Tensor) -> torch.Tensor:
        """RGB ``(3, H, W)`` float32 from ``(C, H, W)`` planes that hold Y, Cb and Cr in turn.

        On the CPU the channels come out interleaved in memory (a channels-last view): OpenCV
        interleaves the planes and applies the matrix in two vectorised passes, where the
        matrix product on planes takes twice as long, and the encoder's conversion reads
        interleaved pixels without copying them.
        """
        import torch

        if planes[0].device.type == "cpu" and all(p.dtype == torch.float32 for p in planes):
            import cv2

            ycc = cv2.merge([plane.contiguous().numpy() for p in planes for plane in p])
            return torch.from_numpy(cv2.transform(ycc, _ycc_to_rgb())).permute(2, 0, 1)
        ycc = torch.cat([p.float() for p in planes])
        return torch.einsum("ij,jhw->ihw", torch.from_numpy(_ycc_to_rgb()).to(ycc.device), ycc)

    @staticmethod
    def _chain(indices: tuple[int, ...], ref: int) -> tuple[tuple[int, ...], int, list[int]]:
        """Distinct frames of a window in slot order, the reference's position, and one slot per frame."""
        chain: list[int] = []
        slots: list[int] = []
        ref_pos = 0
        for slot, index in enumerate(indices):
            if not chain or chain[-1] != index:
                chain.append(index)
                slots.append(slot)
            if slot == ref:
                ref_pos = len(chain) - 1
        return tuple(chain), ref_pos, slots

    @staticmethod
    def _synthetic_indices(frames: torch.Tensor) -> tuple[int, ...]:
        """Indices for a bare window: identical consecutive frames (padding) share one."""
        import torch

        out = [0]
        for i in range(1, frames.shape[0]):
            out.append(out[-1] if torch.equal(frames[i], frames[i - 1]) else out[-1] + 1)
        return tuple(out)

    def _start(self, bank, window: Window, cache: dict) -> tuple[Window, Future]:
        """Convert the window's new frames (cached by index) and start their alignment."""
        import torch

        frames = window.frames
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ConfigError(f"misr needs (N, 3, H, W) RGB windows; got shape {tuple(frames.shape)}")
        indices = window.indices or self._synthetic_indices(frames)
        chain, ref_pos, slots = self._chain(indices, window.ref)
        for index, slot in zip(chain, slots, strict=True):
            if index not in cache:
                ycc = self._ycc(frames[slot: slot + 1].to(self.device))[0]
                cache[index] = ycc
                bank.add(index, (ycc[0] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy())
        future = bank.submit_alignment(chain, ref_pos)
        return dataclasses.replace(window, indices=tuple(indices)), future

    def _finish(self, window: Window, future: Future, cache: dict, cfg) -> torch.Tensor:
        """Fuse a started window once its alignment is ready; ``(3, s H, s W)`` RGB."""
        import torch

        align = future.result()
        planes = torch.stack([cache[i] for i in align.order])
        out, evidence = self.fuse_ycc(planes, align.pos, align.conf, cfg, init=self.initial_estimate(window))
        if self.params.evidence is not None:
            self._write_evidence(evidence, window.pts[window.ref] if window.pts else None, window.indices[window.ref])
        return out

    def fuse_aligned(self, frames: torch.Tensor, pos: Any, conf: Any) -> torch.Tensor:
        """Fuse frames whose motion is already known (e.g. true motion, for evaluation).

        Args:
            frames: ``(K, 3, h, w)`` RGB float in [0, 1], reference first.
            pos: ``(K, h, w, 2)`` positions ``(x, y)`` of each pixel in the reference grid
                (array or tensor).
            conf: ``(K, h, w)`` confidence in [0, 1].

        Returns:
            ``(3, s h, s w)`` RGB float.
        """
        import numpy as np

        from vsr.methods.misr.flow import local_stats, robustness

        ycc = self._ycc(frames.to(self.device))
        lumas = ((ycc[:, 0] * 255).round().clamp(0, 255) / 255).cpu().numpy().astype(np.float32)
        pos = np.ascontiguousarray(pos, np.float32)
        weight = robustness([local_stats(y) for y in lumas], pos, self.params.robust, self.params.robust_texture,
                            out=np.array(conf, np.float32))
        return self.fuse_ycc(ycc, pos, weight, self._fuse_config())[0]

    def initial_estimate(self, window: Window) -> torch.Tensor | None:
        """Where the fusion of ``window`` starts: ``None`` for misr's kernel regression, or a
        ``(3, s H, s W)`` RGB float image (a network's output) that the back-projection then
        projects onto what the window's frames show. Called on the fusion threads."""
        return None

    def fuse_ycc(self, planes: torch.Tensor, pos: Any, conf: Any, cfg,
                 init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse ``(K, 3, h, w)`` YCbCr planes (reference first); returns RGB ``(3, s h, s w)`` and evidence.

        ``init``: see :meth:`initial_estimate`; its chroma is kept unless ``chroma="fuse"``.
        """
        import torch

        from vsr.methods.misr.fuse import fuse, upsample
        from vsr.methods.misr.photometric import match_brightness

        fuse_dtype = self.dtype if planes.device.type == "cuda" else torch.float32
        pos = torch.as_tensor(pos).to(planes.device)
        conf = torch.as_tensor(conf).to(planes.device)
        # Chroma that is not fused comes from the reference alone: only what is fused is matched.
        fused = planes if self.params.chroma == "fuse" else planes[:, :1]
        fused = match_brightness(fused, pos, conf, self.params.brightness_sigma).to(fuse_dtype)
        start = None if init is None else self._ycc(init[None].to(planes.device))[0]
        if self.params.chroma == "fuse":
            result = fuse(fused, pos, conf, cfg, init=start)
            out = (result.image,)
        else:
            result = fuse(fused, pos, conf, cfg, init=None if start is None else start[:1])
            chroma = upsample(planes[0, 1:].float(), self.scale, cfg.psf.offset) if start is None else start[1:]
            out = (result.image, chroma)
        return self._rgb(*out).to(self.dtype), result.evidence

    def _write_evidence(self, evidence: torch.Tensor, pts: int | None, index: int) -> None:
        """Write one evidence map, named by ``pts`` (by decode ``index`` for untimed frames)."""
        import cv2
        import numpy as np

        counts = (evidence.float() * 1000).round().clamp(0, 65535).cpu().numpy().astype(np.uint16)
        name = f"{pts:012d}.png" if pts is not None else f"index{index:06d}.png"
        cv2.imwrite(str(Path(self.params.evidence) / name), counts)

    # -- the Method contract ----------------------------------------------------------

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        """Upscale ``frames[ref]`` using its neighbours.

        Args:
            frames: ``(N, 3, H, W)`` RGB float in [0, 1]; identical consecutive frames are
                treated as padding (fused once).
            ref: index of the frame to upscale.

        Returns:
            ``(3, s H, s W)`` RGB float (not clamped).
        """
        return next(self.stream([Window(frames, ref)]))

    def fusion_workers(self, window_shape: tuple[int, ...]) -> int:
        """How many windows of ``(N, C, H, W)`` frames to fuse at once.

        On the CPU, ``threads`` (or torch's thread count), but no more than half the free
        memory holds: a fusion needs about 40 bytes per output pixel per window frame (about
        200 MB for 640x360 x2 with 5 frames, 1.6 GB for 1920x1080 x2). One on CUDA.
        """
        import torch

        if self.device.type == "cuda":
            return 1
        wanted = self.params.threads or torch.get_num_threads()
        n, _, h, w = window_shape
        need = 40 * n * h * w * self.scale**2
        return max(1, min(wanted, available_bytes(self.device) // 2 // need))

    def stream(self, windows: Iterable[Window], bank: FlowBank | None = None) -> Iterator[torch.Tensor]:
        """Upscale windows in order, one ``(3, s H, s W)`` frame each.

        ``bank``: the :class:`~vsr.methods.misr.flow.FlowBank` to align with (from
        :meth:`flow_bank`), when a caller shares it (the caller closes it); ``None`` makes one,
        closed at the end.

        Per-frame work (luma, flow to and from the previous frame) is cached by decode index;
        the alignment of the next window runs on the flow thread while the current one is fused.
        On the CPU, ``threads`` windows are fused at once, each on one thread: whole frames
        in parallel need no synchronisation, where threads splitting each small operation
        wait on each other dozens of times per frame.
        """
        import torch

        cfg = self._fuse_config()
        own_bank = bank is None
        bank = self.flow_bank() if own_bank else bank
        cache: dict[int, Any] = {}  # decode index -> (3, H, W) YCbCr planes on the device
        workers = 0  # known at the first window, from its size
        pool = None
        pending: collections.deque = collections.deque()  # (window, alignment, fused future or None)
        newest: Window | None = None  # the last window started
        bare = 0  # windows without decode indices get fresh ones, so no cache entry is reused
        threads = torch.get_num_threads()  # with OpenMP, a setting of the calling thread only

        def oldest() -> torch.Tensor:
            window, alignment, fused = pending.popleft()
            out = fused.result() if fused is not None else self._finish(window, alignment, cache, cfg)
            # Frames before the oldest window still to come are no longer needed.
            keep = min(pending[0][0].indices if pending else newest.indices)
            bank.evict(keep)
            for index in [i for i in cache if i < keep]:
                del cache[index]
            return out

        def ready() -> bool:
            """The oldest window can be given out: the pool is full, or it is already fused
            (so a live stream does not wait for later frames to get it)."""
            return bool(pending) and (len(pending) > workers or (pending[0][2] is not None and pending[0][2].done()))

        try:
            for window in windows:
                if not window.indices:
                    synthetic = tuple(bare + i for i in self._synthetic_indices(window.frames))
                    window = dataclasses.replace(window, indices=synthetic)
                    bare = synthetic[-1] + 1
                if not workers:
                    workers = self.fusion_workers(window.frames.shape)
                    if workers > 1:
                        pool = ThreadPoolExecutor(workers, thread_name_prefix="misr-fuse",
                                                  initializer=torch.set_num_threads, initargs=(1,))
                        torch.set_num_threads(1)  # this thread only converts colours; the cores are the pool's
                newest, alignment = self._start(bank, window, cache)
                fused = pool.submit(self._finish, newest, alignment, cache, cfg) if pool is not None else None
                pending.append((newest, alignment, fused))
                while ready():
                    yield oldest()
            while pending:
                yield oldest()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(threads)
            if own_bank:
                bank.close()


def build(scale: int = 2, **params: Any) -> Misr:
    """Build MISR for the registry.

    Args:
        scale: integer factor, 2 to 8.
        **params: fields of :class:`MisrParams`.

    Raises:
        ConfigError: bad scale, unknown parameter or bad value.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or not 2 <= scale <= 8:
        raise ConfigError(f"misr: --scale must be a whole number from 2 to 8; got {scale!r}")
    return Misr(scale, parse(MisrParams, params, method="misr"))
