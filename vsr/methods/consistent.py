"""Multi-frame data consistency for any network: ``misr+span``, ``misr+realesrgan``.

A network's output is a guess at the high-resolution frame; the video's frames are evidence
of it. This method starts misr's robust back-projection from the network's output instead
of from misr's own kernel-regression estimate: every step pulls the image towards agreeing
with the reference frame and with the aligned neighbours (misr's flow, forward-backward and
robustness gates, its Lorentzian data term that stops pulling at samples that disagree),
through the imaging model (``psf``). What the frames contradict (a GAN's invented edge, a
wrong digit) is pulled back to what they show; what they support, or cannot see (detail
above the sampling rate that no neighbour's sub-pixel shift reveals), stays as the network
drew it. Chroma is the network's, as misr keeps the reference's chroma.

With ``temporal=true`` the network's outputs first go through ``--temporal``
(:class:`~vsr.methods.temporal.Temporal`): the start is then the network's detail carried
along the motion, steadier and closer to the truth (Vid4 x4 BI, SPAN, first 10 frames:
+0.13 dB on city, +0.18 on walk over the per-frame start). A recurrent start needs the frames
in order, so then the network runs on a thread of its own, one reference frame after the
other, while misr fuses; its low-resolution gate comes from misr's own flows (misr's flow
parameters), so each pair of frames is aligned once.

``departure`` (a directory) receives, per frame, where and how far the output left the
network's: ``|Y_out - Y_network|`` x 256 as a 16-bit PNG named by frame index. That map is
what the frames did not support.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsr.errors import ConfigError
from vsr.methods.base import Method, Window
from vsr.methods.misr.method import Misr, MisrParams
from vsr.methods.neural import NetworkParams, SpanChannels, TemporalParams, network_options
from vsr.methods.params import parse
from vsr.methods.temporal import Temporal, luma

if TYPE_CHECKING:
    import torch

    from vsr.methods.misr.flow import FlowBank

# Back-projection settings for a network's start, chosen with SPAN on Vid4 x4 BI (first 6 frames
# of city, calendar and walk): the network's image is already sharp, so no bilateral-TV prior;
# plain steps (momentum 0.7 overshoots on walk's fast motion: -0.26 dB); a strict data scale, so
# that only neighbours' samples that agree to 2 % pull (0.05 costs walk 0.1 dB). On the first 10
# frames of all four sequences: +0.35 dB over SPAN alone (bench/RESULTS.md). The data scale holds
# from the first step: misr widens it at first because its own start is blurred; a network's is not.
# Nor is the result clipped to the input's neighbourhood (``antiring``): the network's detail is
# what the start brings. The flow is DIS at full resolution at every scale: beside the network
# its cost is small, and on the shipped clips (x4) it gained 0.03 to 0.04 dB on the mean and cut
# tOF by 7 to 9 %.
DC_DEFAULTS = {"iterations": 20, "step": 1.0, "momentum": 0.0, "btv_weight": 0.0, "data_scale": 0.02,
               "data_scale_start": 0.0, "antiring": False, "flow_preset": "fine"}

# A GAN's start (Real-ESRGAN) is sharp where nothing supports it: its invented texture lies in
# frequencies no frame sees, which the data term alone leaves alone. A bilateral-TV prior
# (smoothed as misr's, so flat areas do not boil) takes it down there; more steps, and a
# looser data scale, let the neighbours' samples pull harder. Chosen on the shipped clip
# realshort.mp4 (x4 BI, first 12 frames): 30.39 -> 31.34 dB against misr's 30.82.
GAN_DC_DEFAULTS = {**DC_DEFAULTS, "iterations": 40, "btv_weight": 0.002, "btv_epsilon": 0.01, "data_scale": 0.05}


@dataclass(frozen=True)
class ConsistentParams(MisrParams, TemporalParams, NetworkParams):
    """Parameters of ``misr+NETWORK``: misr's (window, flow, psf, data term...), with the
    back-projection defaults of :data:`DC_DEFAULTS`, how the network runs, and ``temporal``
    (start from the network's ``--temporal`` output).

    Attributes:
        departure: directory for per-frame maps of where and how far the output left the
            network's (``|Y_out - Y_network|`` x 256, 16-bit PNG named by frame index), or unset.
    """

    iterations: int = DC_DEFAULTS["iterations"]
    step: float = DC_DEFAULTS["step"]
    momentum: float = DC_DEFAULTS["momentum"]
    btv_weight: float = DC_DEFAULTS["btv_weight"]
    data_scale: float = DC_DEFAULTS["data_scale"]
    data_scale_start: float = DC_DEFAULTS["data_scale_start"]
    antiring: bool = DC_DEFAULTS["antiring"]
    flow_preset: str | None = DC_DEFAULTS["flow_preset"]
    departure: str | None = None

    def __post_init__(self) -> None:
        MisrParams.__post_init__(self)
        TemporalParams.__post_init__(self)
        NetworkParams.__post_init__(self)


@dataclass(frozen=True)
class SpanConsistentParams(SpanChannels, ConsistentParams):
    """Parameters of ``misr+span``: those of ``misr+NETWORK`` and SPAN's width."""


@dataclass(frozen=True)
class GanConsistentParams(ConsistentParams):
    """Parameters of ``misr+NETWORK`` for a GAN-trained network (``misr+realesrgan``): those of
    :class:`ConsistentParams` with the back-projection defaults of :data:`GAN_DC_DEFAULTS`."""

    iterations: int = GAN_DC_DEFAULTS["iterations"]
    btv_weight: float = GAN_DC_DEFAULTS["btv_weight"]
    btv_epsilon: float = GAN_DC_DEFAULTS["btv_epsilon"]
    data_scale: float = GAN_DC_DEFAULTS["data_scale"]


class DataConsistent(Misr):
    """misr's back-projection started from a per-frame network's output.

    Args:
        scale: integer factor, 2 to 8; the network runs at this scale.
        params: :class:`~vsr.methods.misr.method.MisrParams` (window, flow, psf, data term...).
        prior: a per-frame method built for ``scale`` (a neural method), or one wrapped in
            :class:`~vsr.methods.temporal.Temporal` (run over the reference frames in order).
        departure: directory for the per-frame departure maps, or ``None``.

    Shape:
        windows of ``(N, 3, H, W)`` float in [0, 1] -> ``(3, s H, s W)`` float.

    Raises:
        ConfigError: the prior is not per-frame or does not upscale by ``scale``.
    """

    def __init__(self, scale: int, params: MisrParams, prior: Method, departure: str | None = None) -> None:
        super().__init__(scale, params)
        if prior.radius != 0:
            raise ConfigError(f"misr+{prior.name}: the network must be per-frame")
        if prior.output_size(16, 16) != (16 * scale, 16 * scale):
            raise ConfigError(f"misr+{prior.name}: the network must upscale by {scale} (no outscale)")
        self.prior = prior
        self.name = f"misr+{prior.name}"
        self.departure = departure
        self._network: dict[int, torch.Tensor] = {}  # decode index -> the network's Y, for departure maps
        self._lock = threading.Lock()
        self._ordered: dict[int, Future] = {}  # decode index -> the recurrent prior's output
        if departure is not None:
            Path(departure).mkdir(parents=True, exist_ok=True)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> DataConsistent:
        super().to(device, dtype)
        self.prior.to(self.device)
        return self

    def describe(self) -> dict[str, object]:
        prior = self.prior.describe()
        if isinstance(self.prior, Temporal) and self.radius > 0:
            # Its low-resolution gate then comes from misr's flows, with misr's flow settings.
            prior["temporal"] = {**prior["temporal"], "gate": "misr's flows"}
        return {**super().describe(), "prior": prior, "departure": self.departure}

    def initial_estimate(self, window: Window) -> torch.Tensor:
        """The network's output for the window's reference frame, ``(3, s H, s W)`` float."""
        import torch

        if window.indices and window.indices[window.ref] in self._ordered:
            out = self._ordered.pop(window.indices[window.ref]).result()
            if self.departure is not None:
                self._network[window.indices[window.ref]] = luma(out)
            return out
        # One network call at a time: misr fuses several windows at once on the CPU, and a
        # network is not safe to call from two threads (its tiling changes when the device
        # runs out of memory); two calls at once would also fight over the same cores.
        with self._lock, torch.inference_mode():
            out = self.prior(window.frames.to(self.device), window.ref).float()
        if self.departure is not None and window.indices:
            self._network[window.indices[window.ref]] = luma(out)
        return out

    def stream(self, windows: Iterable[Window]) -> Iterator[torch.Tensor]:
        """misr's stream (see :meth:`Misr.stream`), writing departure maps when asked."""
        bank = self.flow_bank()
        try:
            if isinstance(self.prior, Temporal):
                # A window of one frame evicts each frame as soon as it is fused, before the prior
                # reaches the next: then the prior keeps a bank of its own.
                windows = self._prior_in_order(windows, bank if self.radius > 0 else None)
            if self.departure is None:
                yield from super().stream(windows, bank)
                return
            order: list[int] = []

            def noted() -> Iterator[Window]:
                for window in windows:
                    order.append(window.indices[window.ref] if window.indices else -1)
                    yield window

            for k, out in enumerate(super().stream(noted(), bank)):
                index = order[k]
                network = self._network.pop(index, None)
                if network is not None:
                    self._write_departure((luma(out.float()) - network).abs(), index)
                yield out
        finally:
            bank.close()

    def _prior_in_order(self, windows: Iterable[Window], bank: FlowBank | None) -> Iterator[Window]:
        """Pass ``windows`` through, running the prior over their reference frames in order on a thread.

        Each window's prior output lands in ``_ordered`` (a future, by decode index) before the
        window goes on to the fusion, whose :meth:`initial_estimate` waits for it. The prior
        aligns its frames with the fusion's ``bank`` (``None``: one of its own): the fusion
        keeps the frames the prior reaches next, and each pair's flow is computed once.
        """
        refs: queue.Queue[Window | None] = queue.Queue()
        pending: queue.Queue[Future] = queue.Queue()
        failed: list[BaseException] = []
        lock = threading.Lock()

        def fail_pending() -> None:
            with lock:
                while not pending.empty():
                    pending.get().set_exception(failed[0])

        def run() -> None:
            try:
                for out in self.prior.stream(iter(refs.get, None), bank):
                    pending.get().set_result(out.float())
            except BaseException as error:  # noqa: BLE001 - handed to the fusion threads waiting on it
                failed.append(error)
                fail_pending()

        worker = threading.Thread(target=run, name="misr-prior", daemon=True)
        worker.start()
        try:
            for window in windows:
                if window.indices:
                    index = window.indices[window.ref]
                    future: Future = Future()
                    self._ordered[index] = future
                    with lock:
                        pending.put(future)
                    refs.put(Window(window.frames[window.ref: window.ref + 1], 0, (index,)))
                    if failed:
                        fail_pending()
                yield window
        finally:
            refs.put(None)

    def _write_departure(self, diff: torch.Tensor, index: int) -> None:
        import cv2
        import numpy as np

        scaled = (diff * (255 * 256)).round().clamp(0, 65535).cpu().numpy().astype(np.uint16)
        cv2.imwrite(str(Path(self.departure) / f"{index:06d}.png"), scaled)


def _build(network: str, scale: int, p: ConsistentParams) -> DataConsistent:
    from vsr.methods.registry import get_method

    if not isinstance(scale, int) or isinstance(scale, bool) or not 2 <= scale <= 8:
        raise ConfigError(f"misr+{network}: --scale must be a whole number from 2 to 8; got {scale!r}")
    network_params = network_options(p)
    if isinstance(p, SpanChannels):
        network_params["channels"] = p.channels
    prior = get_method(network, scale=scale, temporal=p.temporal, temporal_strength=p.temporal_strength,
                       **network_params)
    return DataConsistent(scale, p, prior, departure=p.departure)


def misr_span(scale: int = 2, **params: Any) -> DataConsistent:
    """SPAN's output made consistent with the window's frames. Params: :class:`SpanConsistentParams`."""
    return _build("span", scale, parse(SpanConsistentParams, params, method="misr+span"))


def misr_realesrgan(scale: int = 4, **params: Any) -> DataConsistent:
    """Real-ESRGAN x4plus's output made consistent with the window's frames (``model=`` takes
    any other network, e.g. a user's file; the defaults are a GAN's). Params: :class:`GanConsistentParams`."""
    return _build("realesrgan", scale, parse(GanConsistentParams, params, method="misr+realesrgan"))


def misr_span_crf(scale: int = 2, **params: Any) -> DataConsistent:
    """span-crf's output (SPAN fine-tuned for compressed input) made consistent with the
    window's frames. Params: :class:`ConsistentParams` but ``model``."""
    return _build("span-crf", scale, parse(ConsistentParams, params, method="misr+span-crf"))
