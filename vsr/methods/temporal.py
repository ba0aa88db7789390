"""Temporal stability for per-frame methods: flow-guided recurrent blending (``--temporal``).

A per-frame network upscales each frame on its own, so the detail it adds changes from frame
to frame: flicker. Here each output is blended with the previous *output*, warped onto the
current frame along the optical flow, so that detail follows the motion:

``out_t = net_t + strength * gate * (warp(out_{t-1}) - net_t)``

The warp follows DIS flow computed at the *output* resolution, from this frame's network
output to the previous output: a flow from the low-resolution frames, scaled up, is off by
a fraction of an input pixel, which is several output pixels, and blending along it
smeared what moves fast (Vid4 walk lost 1.4 dB that way); DIS's cheaper presets at the
output resolution cost up to 1.4 dB on the shipped clips (smpte's changing digits; 0.2 on
cockatoo's wings). The flow back, which only has to say where the round trip fails, is DIS's
ultrafast preset: half the cost of the two flows, the same PSNR and tOF on the shipped
clips. The gate is the product of that round trip's confidence (``output_fb_sigma``, output
pixels) and misr's checks on
the low-resolution frames (:class:`~vsr.methods.misr.flow.FlowBank`: forward-backward
confidence, then the robustness test that the local mean of the current frame must agree
with the previous frame's at the flowed position). Where any fails (new content,
disoccluded background behind a moving object, a scene cut) the gate is 0 and the current
frame's output is taken as it is, so nothing trails behind moving objects. Being recurrent,
the blend averages along the whole trajectory with weights ``strength^k``.

Causal by construction: frame ``t`` needs only frame ``t - 1`` and the previous output, so it
adds no latency and works with ``--live``. Frames dropped by a live pipeline leave a gap the
flow bridges (or the gate rejects).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from vsr.errors import ConfigError
from vsr.methods.base import Method, Window

if TYPE_CHECKING:
    import torch

    from vsr.methods.misr.flow import FlowBank

_LUMA = (0.299, 0.587, 0.114)  # BT.601, as misr's luma


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` RGB -> ``(H, W)`` float32 BT.601 luma, in the same range."""
    r, g, b = rgb.float()
    return r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]


def luma_u8(frame: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` RGB float in [0, 1] -> ``(H, W)`` uint8 BT.601 luma on the host (for flow).

    Rounded half to even and clamped; on the CPU one compiled pass
    (:func:`vsr.methods.temporal_kernels.luma_u8`), elsewhere torch's ops on the device.
    """
    import torch

    if frame.device.type == "cpu" and frame.dtype == torch.float32:
        from vsr.methods import temporal_kernels

        out = np.empty(frame.shape[-2:], np.uint8)
        temporal_kernels.luma_u8(frame.numpy(), out)
        return out
    return (luma(frame) * 255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


# The output-resolution flow back only checks the forward flow's round trip (to within a
# pixel): DIS's cheapest preset does that as well as the forward flow's own.
OUTPUT_FLOW_BACK = "ultrafast"


class Temporal(Method):
    """A per-frame method made temporally stable by flow-guided recurrent blending.

    Args:
        inner: a per-frame method (``radius == 0``), e.g. a :class:`~vsr.methods.neural.NeuralSR`.
        strength: weight of the warped previous output where the gate is fully open, in
            [0, 1); 0 gives the per-frame output back.
        flow_preset: DIS preset of the flows (``"ultrafast"``, ``"fast"``, ``"medium"``, ``"fine"``:
            :func:`~vsr.methods.misr.flow.create_dis`) but the output-resolution flow back
            (always ``"ultrafast"``).
        fb_sigma: forward-backward tolerance of the flow, low-resolution pixels.
        robust: tolerated difference (intensity 0..1) of local means on flat areas.
        robust_texture: multiple of the local standard deviation added to ``robust``.
        output_fb_sigma: forward-backward tolerance of the output-resolution flow, output pixels.

    Shape:
        windows of one ``(1, 3, H, W)`` float frame in [0, 1] -> ``(3, H_out, W_out)`` float.

    Raises:
        ConfigError: ``inner`` uses neighbours, or a parameter is out of range.
    """

    radius = 0
    integer_io = False

    def __init__(self, inner: Method, strength: float = 0.6, flow_preset: str = "medium",
                 fb_sigma: float = 0.5, robust: float = 0.05, robust_texture: float = 0.5,
                 output_fb_sigma: float = 1.0) -> None:
        from vsr.methods.misr.flow import PRESETS

        super().__init__()
        if inner.radius != 0:
            raise ConfigError(f"--temporal is for per-frame methods; {inner.name} already uses neighbours")
        if not 0 <= strength < 1:
            raise ConfigError(f"temporal_strength must be in [0, 1); got {strength}")
        if flow_preset not in PRESETS:
            raise ConfigError(f"temporal flow preset must be one of {', '.join(PRESETS)}; got {flow_preset!r}")
        if not output_fb_sigma > 0:
            raise ConfigError(f"temporal output_fb_sigma must be above 0 (output pixels); got {output_fb_sigma}")
        self.inner = inner
        self.name = inner.name
        self.scale = inner.scale
        self.strength = float(strength)
        self.flow_preset = flow_preset
        self.fb_sigma = fb_sigma
        self.robust = robust
        self.robust_texture = robust_texture
        self.output_fb_sigma = output_fb_sigma
        self._dis = None
        self._dis_back = None

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> Temporal:
        self.inner.to(device, dtype)
        super().to(device, dtype)
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.inner.output_size(height, width)

    def describe(self) -> dict[str, object]:
        return {**self.inner.describe(), "temporal": {"strength": self.strength, "flow_preset": self.flow_preset,
                                                      "fb_sigma": self.fb_sigma, "robust": self.robust,
                                                      "robust_texture": self.robust_texture,
                                                      "output_fb_sigma": self.output_fb_sigma,
                                                      "output_flow_back": OUTPUT_FLOW_BACK}}

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        """One frame on its own: nothing to blend with, the per-frame output."""
        return next(self.stream([Window(frames, ref)]))

    def stream(self, windows: Iterable[Window], bank: FlowBank | None = None) -> Iterator[torch.Tensor]:
        """Upscale windows in order; each output is blended with the previous one (see the module).

        ``bank``: a :class:`~vsr.methods.misr.flow.FlowBank` that already holds (or will hold)
        the low-resolution frames and their flows, as misr's does under ``misr+NET``: its
        pairs are then computed once for both, with its flow parameters, and its owner evicts
        and closes it. ``None``: a bank of this instance's own, evicted as frames pass.
        """
        from vsr.methods.misr.flow import FlowBank

        own = bank is None
        if own:
            bank = FlowBank(self.flow_preset, self.fb_sigma, robust=self.robust, robust_texture=self.robust_texture)
        seen: deque[tuple[int, Any]] = deque()  # (decode index, alignment future or None), in order
        state = {"previous": None, "bare": 0}

        def feed() -> Iterator[Window]:
            # The flow of a frame starts as soon as the inner method takes the frame, so it runs
            # on the flow thread while the network computes.
            for window in windows:
                if window.indices:
                    index = window.indices[window.ref]
                else:
                    index = state["bare"]
                    state["bare"] += 1
                bank.add(index, luma_u8(window.frames[window.ref]))
                previous = state["previous"]
                alignment = None
                if previous is not None and previous < index:
                    # Chain (previous, current) with the previous frame as reference: positions
                    # of the current frame's pixels in the previous frame, gated.
                    alignment = bank.submit_alignment((previous, index), 0)
                seen.append((index, alignment))
                state["previous"] = index
                yield window

        last: torch.Tensor | None = None
        last_luma: np.ndarray | None = None
        try:
            # One window at a time: a batching inner stream would hold frames back, adding
            # latency and stalling callers that wait for each output before sending the next.
            for window in feed():
                (out,) = tuple(self.inner.stream((window,)))
                index, alignment = seen.popleft()
                out = out.float()
                now = luma_u8(out)
                if alignment is not None and last is not None and last.shape == out.shape:
                    out, now = self.blend(out, last, alignment.result(), now, last_luma)
                if own:
                    bank.evict(index)
                last, last_luma = out, now
                yield out
        finally:
            if own:
                bank.close()

    def blend(self, current: torch.Tensor, previous: torch.Tensor, alignment, now: np.ndarray | None = None,
              before: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """``current + strength * gate * (warp(previous) - current)``.

        Args:
            current: ``(C, H, W)`` float, this frame's per-frame output.
            previous: ``(C, H, W)`` float, the previous (blended) output.
            alignment: :class:`~vsr.methods.misr.flow.Alignment` with the previous frame as
                reference: ``conf[1]`` is the low-resolution gate of the current frame's pixels.
            now, before: :func:`luma_u8` of ``current`` and ``previous``, when already known.

        Returns:
            the blended ``(C, H, W)`` float32 (on the CPU with its channels interleaved in memory,
            as networks' channels-last outputs) and its ``(H, W)`` uint8 :func:`luma_u8`. On the
            CPU the warp is OpenCV's bicubic remap and the blend one compiled pass; elsewhere
            torch's ``grid_sample`` on the device (the same up to float rounding).
        """
        import cv2
        import torch

        from vsr.methods.misr.flow import fb_confidence, pixel_grid, warp_bicubic

        now = luma_u8(current) if now is None else now
        before = luma_u8(previous) if before is None else before
        forward, backward = self.output_flows(now, before)
        gate = fb_confidence(forward, backward, self.output_fb_sigma)
        h, w = gate.shape
        # cv2's bilinear resize has F.interpolate's centred grid (align_corners=False).
        low_gate = cv2.resize(np.ascontiguousarray(alignment.conf[1]), (w, h), interpolation=cv2.INTER_LINEAR)
        # The previous output at this frame's pixels moved along the flow (one remap of the
        # interleaved channels on the CPU: networks' channels-last outputs, and this blend's own).
        pos = np.add(forward, pixel_grid(h, w), out=forward)  # the flow is not needed after this
        warped = warp_bicubic(previous, torch.from_numpy(pos).to(previous.device)[None])[0]
        if current.device.type != "cpu":
            gate = torch.from_numpy(gate * low_gate).to(current.device)
            out = current + (warped - current) * (gate * self.strength)
            return out, luma_u8(out)
        from vsr.methods import temporal_kernels

        out = np.empty((h, w, 3), np.float32)
        blended = np.empty((h, w), np.uint8)
        temporal_kernels.blend(current.numpy(), warped.numpy(), gate, low_gate, self.strength,
                               out.transpose(2, 0, 1), blended)
        return torch.from_numpy(out).permute(2, 0, 1), blended

    def output_flows(self, now: np.ndarray, before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The output-resolution flows from ``now`` to ``before`` (the warp) and back (its check).

        Args:
            now, before: ``(H, W)`` uint8 luma of this frame's output and of the previous output.

        Returns:
            two ``(H, W, 2)`` float32 flows ``(dx, dy)`` in output pixels.
        """
        from vsr.methods.misr.flow import create_dis

        if self._dis is None:
            self._dis = create_dis(self.flow_preset)
            self._dis_back = create_dis(OUTPUT_FLOW_BACK)
        return self._dis.calc(now, before, None), self._dis_back.calc(before, now, None)
