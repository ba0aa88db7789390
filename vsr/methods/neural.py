"""Per-frame neural super-resolution: SPAN, Real-ESRGAN, waifu2x and users' own models.

Every frame goes through one network, batch by batch (:meth:`NeuralSR.upscale_batch`: tensors in,
tensors out; the engine's transport does the copies). On CUDA the network runs in half
precision (``fp16``, or ``bf16`` with ``half="bf16"``; ``fp32=True`` turns it off) in
channels-last layout, and consecutive small frames are batched. The decoder's 8- or 16-bit
frames are taken as they are and come back quantized to the same type on the device, in the
(H, W, C) layout the encoder's converter reads: a quarter (or half) of the bytes of float32
each way. On the CPU the same code runs in float32. Frames too large for the device's free
memory are cut into overlapping tiles (cut from the host copy when the frame lives on the
host), so only one tile is on the device at a time; the overlap covers the network's
receptive field where it is small, which makes seams exact.

``ensemble`` 4 or 8 runs the network on the frame (each tile, each batch) flipped, and with 8
also transposed, turns each output back and averages them: the geometric self-ensemble (the
"+" of EDSR+, Lim et al. 2017), that many times the network's cost for a finer, steadier
output.

When the requested scale differs from the network's (``--scale 2`` with an x4 model), the
network output is resized with an antialiased bicubic filter to the requested size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from vsr.errors import ConfigError
from vsr.methods.base import Method
from vsr.methods.memory import available_bytes
from vsr.methods.params import parse
from vsr.methods.samples import from_unit_float, to_unit_float

if TYPE_CHECKING:
    import torch

    from vsr.models.loader import LoadedModel

_DEFAULT_TILE_PAD = 10  # overlap for networks with a large receptive field (RRDBNet)
_MIN_TILE = 32
# On the CPU a batch only pays for thumbnails: past a few thousand pixels a frame's activations
# outgrow the caches and a batch of 4 runs slower per frame than one frame (x4plus at 160x90:
# 1.62 s against 1.17 s).
_CPU_BATCH_PIXELS = 1 << 12
_FLIPS = ((), (-1,), (-2,), (-2, -1))
# ensemble size -> the (transpose, flipped dims) of each run; the first is the frame as it is.
_ENSEMBLES = {1: ((False, ()),), 4: tuple((False, f) for f in _FLIPS),
              8: tuple((t, f) for t in (False, True) for f in _FLIPS)}


class NeuralSR(Method):
    """A single-image SR network applied to every frame.

    Args:
        model: the loaded network (:func:`vsr.models.loader.load`).
        scale: requested output scale; the network output is resized when it differs from
            ``model.scale``.
        tile: tile size in input pixels; ``0`` picks one from free memory (no tiling when the
            frame fits), a negative value never tiles.
        tile_pad: overlap of tiles in input pixels; default: the network's receptive field
            when small (exact seams), else 10.
        fp32: compute in float32 on CUDA too.
        half: ``"fp16"`` or ``"bf16"``, the reduced precision used on CUDA.
        outscale: exact output scale (may be fractional, e.g. 1.5); overrides ``scale`` for the
            output size.
        compile: wrap the network in ``torch.compile``.
        batch: frames per batch; ``0`` picks from the frame size.
        ensemble: geometric self-ensemble: 1 (off), 4 (the two flips and both) or 8 (those and
            their transposes); the network runs that many times, outputs averaged.
        name: registry name.

    Shape:
        windows of ``(1, 3, H, W)`` float in [0, 1] -> ``(3, H_out, W_out)`` float, or
        uint8/uint16 frames (0..peak) -> the same integer type, as a view of ``(H_out, W_out, 3)``
        memory; see :meth:`output_size`.
    """

    radius = 0
    integer_io = True
    batched = True

    def __init__(self, model: LoadedModel, scale: int, *, tile: int = 0, tile_pad: int | None = None,
                 fp32: bool = False, half: str = "fp16", outscale: float | None = None,
                 compile: bool = False, batch: int = 0, ensemble: int = 1, name: str = "model") -> None:
        super().__init__()
        if half not in ("fp16", "bf16"):
            raise ConfigError(f"half must be fp16 or bf16; got {half!r}")
        if tile_pad is not None and tile_pad < 0:
            raise ConfigError(f"tile_pad must be >= 0; got {tile_pad}")
        if outscale is not None and not 0 < outscale <= 16:
            raise ConfigError(f"outscale must be in (0, 16]; got {outscale}")
        if batch < 0:
            raise ConfigError(f"batch must be >= 0; got {batch}")
        if ensemble not in _ENSEMBLES:
            raise ConfigError(f"ensemble must be 1, 4 or 8; got {ensemble!r}")
        self.name = name
        self.model = model
        self.native_scale = model.scale
        self.scale = scale
        self.outscale = outscale
        self.tile = tile
        self.tile_pad = tile_pad if tile_pad is not None else (model.margin or _DEFAULT_TILE_PAD)
        self.fp32 = fp32
        self.half = half
        self.compile = compile
        self.batch = batch
        self.ensemble = ensemble
        self.net = model.module.eval().requires_grad_(False)
        self._runner = self.net
        self._compute_dtype = None

    # -- configuration -------------------------------------------------------------------------

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> NeuralSR:
        """Move the network to ``device``; on CUDA, to half precision and channels-last unless ``fp32``."""
        import torch

        super().to(device, dtype)
        half = {"fp16": torch.float16, "bf16": torch.bfloat16}[self.half]
        if half == torch.float16 and not self.model.supports_half and self.model.supports_bfloat16:
            half = torch.bfloat16
        usable = self.model.supports_half if half == torch.float16 else self.model.supports_bfloat16
        if self.device.type == "cuda" and not self.fp32 and usable:
            self._compute_dtype = half
        else:
            self._compute_dtype = torch.float32
        # channels-last pays on both: cuDNN tensor cores on CUDA, oneDNN's blocked convs on the CPU.
        self.net.to(device=self.device, dtype=self._compute_dtype, memory_format=torch.channels_last)
        # Default dynamism: a second input shape (the last, smaller batch; edge tiles) compiles
        # one shape-generic graph instead of one graph per shape.
        self._runner = torch.compile(self.net) if self.compile else self.net
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out)``: ``scale`` (or ``outscale``) times the input size."""
        factor = self.outscale if self.outscale is not None else self.scale
        return max(1, round(height * factor)), max(1, round(width * factor))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "model": self.model.name, "arch": self.model.arch,
                "native_scale": self.native_scale, "outscale": self.outscale, "tile": self.tile,
                "tile_pad": self.tile_pad, "precision": str(self._compute_dtype or "float32").replace("torch.", ""),
                "compile": self.compile, "ensemble": self.ensemble}

    # -- the simple path -----------------------------------------------------------------------

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        """Upscale ``frames[ref]``: ``(N, C, H, W)`` -> ``(C, H_out, W_out)`` on ``frames``' device.

        Float frames in [0, 1] give float; uint8/uint16 frames give the same integer type.
        """
        import torch

        with torch.inference_mode():
            return self._upscale(frames[ref : ref + 1])[0]

    def upscale_batch(self, frames: torch.Tensor) -> torch.Tensor:
        """Upscale a batch: ``(B, C, H, W)`` on any device -> ``(B, C, H_out, W_out)`` on ``frames``'
        device (see :meth:`_upscale`), tiled when it does not fit the device."""
        import torch

        with torch.inference_mode():
            return self._upscale(frames)

    def batch_size(self, height: int, width: int) -> int:
        """Frames per batch: ``batch``, else as many as fit (up to 8; thumbnails only on the CPU)."""
        return self._batch_for(height, width)

    def _upscale(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` on any device -> ``(B, C, H_out, W_out)`` on ``x``'s device, of ``x``'s kind.

        Float in [0, 1] gives float32; integer frames give the same integer type (see
        :meth:`_deliver`).
        """
        import torch

        tile = self._tile_for(x.shape[-2], x.shape[-1], x.shape[0])
        if tile is None:
            try:
                return self._deliver(self._resize_output(self._forward(x)), x).to(x.device)
            except torch.cuda.OutOfMemoryError:
                if not self._tile_after_oom(*x.shape[-2:]):
                    raise
                return self._upscale(x)
        out_device = x.device
        if x.device.type != "cpu":
            out_bytes = 4 * x[0].numel() * self.native_scale**2
            if out_bytes > available_bytes(x.device) // 4:
                out_device = _device("cpu")  # a huge output is assembled on the host, tile by tile
        return _cat([self._deliver(self._resize_output(self._forward_tiled(img[None], tile, out_device)), x)
                     for img in x])

    @staticmethod
    def _deliver(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Network output -> the kind of the input ``like``: float clipped to [0, 1], or integers
        (:func:`from_unit_float` clips and rounds). NaN (a float16 overflow) becomes 0 either way."""
        if like.is_floating_point():
            return y.nan_to_num_(nan=0.0).clamp_(0.0, 1.0)
        return from_unit_float(y, like.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on a batch: ``(B, C, H, W)`` float in [0, 1] or integer, on any device ->
        ``(B, C, sH, sW)`` float32 on the device."""
        import torch
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        multiple = self.model.size_multiple
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        x = to_unit_float(x, self.device, self._compute_dtype or torch.float32)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        y = None
        for transpose, flips in _ENSEMBLES[self.ensemble]:
            t = x.transpose(-2, -1) if transpose else x
            t = t.flip(flips) if flips else t
            out = self._runner(t.contiguous(memory_format=torch.channels_last)).float()
            out = out.flip(flips) if flips else out
            out = out.transpose(-2, -1) if transpose else out
            y = out if y is None else y.add_(out)
        if self.ensemble > 1:
            y.div_(self.ensemble)
        s = self.native_scale
        return y[..., : h * s, : w * s]

    def _forward_tiled(self, x: torch.Tensor, tile: int, out_device: torch.device | None = None) -> torch.Tensor:
        """One frame ``(1, C, H, W)`` in overlapping tiles; only one tile is on the device at a time.

        Tiles are cut from ``x`` where it lives (the host for host frames) and the output is
        assembled on ``out_device`` (default: ``x``'s device).
        """
        import torch

        _, c, h, w = x.shape
        s, pad = self.native_scale, self.tile_pad
        out_device = out_device or x.device
        out = torch.empty((1, c, h * s, w * s), dtype=torch.float32, device=out_device)
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                py0, px0 = max(y0 - pad, 0), max(x0 - pad, 0)
                py1, px1 = min(y1 + pad, h), min(x1 + pad, w)
                result = self._run_with_oom_retry(x[..., py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[..., y0 * s : y1 * s, x0 * s : x1 * s] = result[
                    ..., oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s].to(out_device)
        return out

    def _run_with_oom_retry(self, piece: torch.Tensor) -> torch.Tensor:
        """:meth:`_forward` of one tile; on running out of device memory, again in smaller tiles."""
        import torch

        try:
            return self._forward(piece)
        except torch.cuda.OutOfMemoryError:
            if not self._tile_after_oom(*piece.shape[-2:]):
                raise
            return self._forward_tiled(piece, self.tile)

    def _tile_after_oom(self, h: int, w: int) -> bool:
        """The device ran out of memory on an ``h`` x ``w`` input, so the free-memory estimate was
        wrong: tile at half that size from now on. False when the input is already a smallest tile."""
        import torch

        torch.cuda.empty_cache()
        smaller = max(_MIN_TILE, max(h, w) // 2)
        if smaller >= max(h, w):
            return False
        self.tile = smaller
        return True

    def _resize_output(self, y: torch.Tensor) -> torch.Tensor:
        """Network output ``(B, C, sH, sW)`` -> the requested size (antialiased bicubic), not clipped."""
        import torch.nn.functional as F

        out_h, out_w = self.output_size(y.shape[-2] // self.native_scale, y.shape[-1] // self.native_scale)
        if (out_h, out_w) != tuple(y.shape[-2:]):
            y = F.interpolate(y, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True)
        return y

    # -- sizing --------------------------------------------------------------------------------

    def _tile_for(self, h: int, w: int, batch: int = 1) -> int | None:
        """Tile size for an ``h`` x ``w`` frame, or ``None`` when the whole frame (batch) runs at once."""
        if self.tile < 0:
            return None
        if self.tile > 0:
            return self.tile if max(h, w) > self.tile else None
        budget = available_bytes(self.device) // 2
        need = self._bytes_per_pixel() * h * w * batch
        if need <= budget:
            return None
        side = int(math.sqrt(budget / self._bytes_per_pixel())) // 8 * 8
        return max(_MIN_TILE, side)

    def _bytes_per_pixel(self) -> int:
        """Rough peak activation bytes per input pixel: wide features at input and output resolution."""
        import torch

        elem = 2 if self._compute_dtype in (torch.float16, torch.bfloat16) else 4
        return elem * (64 * 8 + 64 * 3 * self.native_scale**2)

    def _batch_for(self, h: int, w: int) -> int:
        if self.batch:
            return self.batch
        if self._tile_for(h, w) is not None:
            return 1
        if self.device.type == "cuda":
            fit = available_bytes(self.device) // 2 // max(1, self._bytes_per_pixel() * h * w)
            return int(max(1, min(8, fit)))
        return int(max(1, min(8, _CPU_BATCH_PIXELS // (h * w))))

def _device(name: str) -> torch.device:
    import torch

    return torch.device(name)


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    import torch

    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


# -- factories (the registry points here) ------------------------------------------------------


@dataclass(frozen=True)
class NetworkParams:
    """How a network runs: parameters of every neural method, and of the network in misr+NETWORK.

    Attributes:
        model: another network than the method's own: a name from ``vsr models`` or a file
            (.safetensors preferred; .pth/.pt/.ckpt need torch 2.6 or later).
        tile: tile size in input pixels: 0 picks one from free memory (no tiling when the frame
            fits), a negative value never tiles.
        tile_pad: overlap of tiles in input pixels; unset: the network's receptive field where it
            is small (exact seams), else 10.
        fp32: compute in float32 on CUDA too (no half precision).
        half: the reduced precision used on CUDA.
        compile: wrap the network in torch.compile (slow start, faster frames).
        batch: frames per batch; 0 picks from the frame size.
        ensemble: geometric self-ensemble (Lim et al. 2017): 4 runs the network also on the
            frame flipped left-right, upside down and both, 8 also on their transposes; each
            output is turned back and the outputs averaged. Costs 4 or 8 times the network;
            1 is off.
    """

    flags: ClassVar[tuple[str, ...]] = ("model", "tile", "fp32", "half", "compile", "ensemble")
    model: str | None = None
    tile: int = 0
    tile_pad: int | None = None
    fp32: bool = False
    half: Literal["fp16", "bf16"] = "fp16"
    compile: bool = False
    batch: int = 0
    ensemble: Literal[1, 4, 8] = 1

    def __post_init__(self) -> None:
        if self.tile_pad is not None and self.tile_pad < 0:
            raise ConfigError(f"tile_pad must be >= 0; got {self.tile_pad}")
        if self.batch < 0:
            raise ConfigError(f"batch must be >= 0; got {self.batch}")


@dataclass(frozen=True)
class TemporalParams:
    """Temporal stability of a per-frame method (:class:`~vsr.methods.temporal.Temporal`).

    Attributes:
        temporal: blend each output with the previous one warped along the optical flow (no
            flicker; occlusions and new content follow the current frame; no added latency).
        temporal_strength: weight of the warped previous output where the flow is trusted, in
            [0, 1); unset: the blend's default (0.6). Needs temporal.
    """

    flags: ClassVar[tuple[str, ...]] = ("temporal",)
    temporal: bool = False
    temporal_strength: float | None = None

    def __post_init__(self) -> None:
        if self.temporal_strength is not None and not self.temporal:
            raise ConfigError("temporal_strength needs --temporal (temporal=true)")


@dataclass(frozen=True)
class NeuralParams(TemporalParams, NetworkParams):
    """Parameters of a per-frame neural method.

    Attributes:
        outscale: any output factor (e.g. 1.5): the network's output resized to it; overrides
            the scale for the output size.
    """

    flags: ClassVar[tuple[str, ...]] = ("outscale",)
    outscale: float | None = None

    def __post_init__(self) -> None:
        NetworkParams.__post_init__(self)
        TemporalParams.__post_init__(self)
        if self.outscale is not None and not 0 < self.outscale <= 16:
            raise ConfigError(f"outscale must be in (0, 16]; got {self.outscale}")


@dataclass(frozen=True)
class SpanChannels:
    """SPAN's width.

    Attributes:
        channels: feature channels of the SPAN model: 48 or 52 (slightly slower, slightly finer).
    """

    channels: Literal[48, 52] = 48


@dataclass(frozen=True)
class SpanParams(SpanChannels, NeuralParams):
    """Parameters of ``span``: those of every neural method and SPAN's width."""


@dataclass(frozen=True)
class Waifu2xParams(NeuralParams):
    """Parameters of ``waifu2x-photo``.

    Attributes:
        noise: JPEG-denoising strength of the model, 0..3, or -1 for none.
    """

    noise: Literal[-1, 0, 1, 2, 3] = -1


def network_options(params: NetworkParams) -> dict[str, Any]:
    """The fields of :class:`NetworkParams` in ``params`` (any subclass), as keyword arguments."""
    return {f.name: getattr(params, f.name) for f in fields(NetworkParams)}


def _check_scale(method: str, scale: int) -> int:
    if not isinstance(scale, int) or not 1 <= scale <= 8:
        raise ConfigError(f"method {method} takes a scale from 1 to 8; got {scale!r}")
    return scale


def _neural(method: str, scale: int, model_name: str | LoadedModel | None, p: NeuralParams) -> Method:
    """The network ``p.model`` (else ``model_name``, or a network already loaded) applied per
    frame, with ``--temporal`` if asked."""
    from vsr.models.loader import LoadedModel, load

    if p.model is None and model_name is None:
        raise ConfigError("method model needs model=PATH (a .pth or .safetensors file) or a model name")
    model = model_name if isinstance(model_name, LoadedModel) and p.model is None else load(p.model or model_name)
    options = {k: v for k, v in network_options(p).items() if k != "model"}
    scale = scale or model.scale if model_name is None else scale  # a file's own scale unless one is asked
    method_ = NeuralSR(model, _check_scale(method, scale), name=method, outscale=p.outscale, **options)
    if not p.temporal:
        return method_
    from vsr.methods.temporal import Temporal

    return Temporal(method_) if p.temporal_strength is None else Temporal(method_, strength=p.temporal_strength)


def span(scale: int = 2, **params: Any) -> Method:
    """SPAN, a fidelity-trained network: the x2 model for scales 1 and 2, the x4 model above
    (other scales resize its output); ``channels`` 48 (default) or 52 picks the width.

    Params: :class:`SpanParams`.

    Raises:
        ConfigError: unknown parameter or bad value. ModelError: weights unavailable.
    """
    p = parse(SpanParams, params, method="span")
    native = 2 if _check_scale("span", scale) <= 2 else 4
    return _neural("span", scale, f"span-x{native}-ch{p.channels}", p)


def realesrgan(scale: int = 4, **params: Any) -> Method:
    """Real-ESRGAN x4plus (RRDBNet, 23 blocks); other scales resize its x4 output.

    Params: :class:`NeuralParams` (``model`` takes another manifest name or a file).

    Raises:
        ConfigError: unknown parameter or bad value. ModelError: weights unavailable.
    """
    return _neural("realesrgan", scale, "realesrgan-x4plus", parse(NeuralParams, params, method="realesrgan"))


def realesrgan_anime(scale: int = 4, **params: Any) -> Method:
    """Real-ESRGAN x4plus anime (RRDBNet, 6 blocks); same parameters as :func:`realesrgan`."""
    return _neural("realesrgan-anime", scale, "realesrgan-x4plus-anime",
                   parse(NeuralParams, params, method="realesrgan-anime"))


def realesr_animevideo(scale: int = 4, **params: Any) -> Method:
    """Real-ESRGAN's anime-video model, ``realesr-animevideov3`` (SRVGGNetCompact): the x2, x3 or
    x4 model, else x4 resized. Its weights were trained on anime video: on live-action footage it
    flattens texture into cartoon-like areas (``span`` is the fast model for real footage)."""
    p = parse(NeuralParams, params, method="realesr-animevideo")
    native = scale if scale in (2, 3, 4) else 4
    return _neural("realesr-animevideo", scale, f"realesr-animevideov3-x{native}", p)


def realesr_video(scale: int = 4, **params: Any) -> Method:
    """``realesr-video``, the former name of :func:`realesr_animevideo`: the same anime-video model."""
    return realesr_animevideo(scale, **params)


def waifu2x_photo(scale: int = 2, **params: Any) -> Method:
    """waifu2x upconv_7 photo x2; ``noise`` 0..3 picks the JPEG-denoising model (default: none).

    Other scales resize the x2 output.
    """
    p = parse(Waifu2xParams, params, method="waifu2x-photo")
    name = "waifu2x-photo-x2" if p.noise == -1 else f"waifu2x-photo-noise{p.noise}-x2"
    return _neural("waifu2x-photo", scale, name, p)


def user_model(scale: int = 0, **params: Any) -> Method:
    """A model file the user brings (``model=PATH``: .pth, .pt, .ckpt or .safetensors) or a manifest name.

    Architecture and scale are detected (spandrel); ``scale`` 0 keeps the model's own scale.

    Raises:
        ConfigError: no ``model`` given, unknown parameter. ModelError: unreadable, unsafe or
            unknown model.
    """
    return _neural("model", scale, None, parse(NeuralParams, params, method="model"))
