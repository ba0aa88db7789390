"""``vsr.Upscaler``: frames pushed one by one give what a file run gives, in the caller's kind,
and the caller's torch settings stay as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import framemd5, make_clip

import vsr
from vsr.engine.window import to_integer_hwc
from vsr.io.decode import Decoder

MISR = {"window": 3, "iterations": 1, "flow_preset": "ultrafast", "threads": 2}


def _decoded(path) -> list[np.ndarray]:
    """The clip's frames as vsr decodes them, ``(H, W, 3)`` uint8."""
    decoder = Decoder(str(path))
    try:
        return [f.data.permute(1, 2, 0).numpy().copy() for f in decoder.frames()]
    finally:
        decoder.close()


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=8, size=(64, 48), audio=False)


@pytest.mark.parametrize("method,params", [("bicubic", None), ("misr", MISR)])
def test_numpy_frames_pushed_match_the_frame_iterator(clip, method, params):
    expected = [to_integer_hwc(f.data, 8) for f in vsr.frames(str(clip), method, 2, device="cpu", params=params)]
    got = []
    with vsr.Upscaler(method, scale=2, params=params, device="cpu") as up:
        for image in _decoded(clip):
            got += up.push(image)
        got += up.flush()
    assert len(got) == len(expected) == 8
    for a, b in zip(got, expected, strict=True):
        assert a.shape == (96, 128, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


def test_misr_frames_come_out_after_their_neighbours(clip):
    images = _decoded(clip)
    with vsr.Upscaler("misr", scale=2, params={**MISR, "threads": 1}, device="cpu") as up:
        assert up.latency == 1
        counts = [len(up.push(image)) for image in images]
        rest = up.flush()
    # Window 3: frame t needs frame t + 1; one fusion thread holds one more window.
    assert counts[: up.latency] == [0] * up.latency
    assert sum(counts) + len(rest) == len(images) and len(rest) >= up.latency


def test_tensors_come_back_in_their_layout_and_dtype(clip):
    images = _decoded(clip)[:3]
    chw = [torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images]
    expected = [f.data for f in vsr.frames(str(clip), "bicubic", 2, device="cpu")][:3]
    with vsr.Upscaler("bicubic", scale=2, device="cpu") as up:
        out_chw = [up(t) for t in chw]
        out_hwc = [up(t.permute(1, 2, 0).contiguous()) for t in chw]
        out_half = up(chw[0].half())
        out_u16 = up(np.full((4, 5, 3), 40000, np.uint16))
    for a, b, want in zip(out_chw, out_hwc, expected, strict=True):
        assert a.shape == (3, 96, 128) and a.dtype == torch.float32
        assert b.shape == (96, 128, 3)
        torch.testing.assert_close(a, want, atol=1 / 255, rtol=0)
        torch.testing.assert_close(b, a.permute(1, 2, 0))
    assert out_half.dtype == torch.float16 and out_half.shape == (3, 96, 128)
    assert out_u16.dtype == np.uint16 and out_u16.shape == (8, 10, 3) and (out_u16 == 40000).all()


def test_mixed_sizes_and_bad_frames_are_clear_errors():
    with vsr.Upscaler("bicubic", scale=2, device="cpu") as up:
        assert len(up.push(np.zeros((48, 64, 3), np.uint8))) == 1  # per frame: out at once
        with pytest.raises(vsr.InputError, match="frame 1 is 32x24, the frames before it 64x48.*flush") as info:
            up.push(np.zeros((24, 32, 3), np.uint8))
        assert "\n" not in str(info.value)
        assert up.flush() == []
        assert up.push(np.zeros((24, 32, 3), np.uint8))[0].shape == (48, 64, 3)  # a new clip may differ
        up.flush()
        with pytest.raises(vsr.InputError, match="RGB"):
            up(np.zeros((24, 32), np.uint8))
        with pytest.raises(vsr.InputError, match="uint8, uint16 or floating"):
            up(np.zeros((24, 32, 3), np.int32))


def test_leaving_the_context_closes_it_and_keeps_the_last_frames(clip):
    images = _decoded(clip)
    with vsr.Upscaler("misr", scale=2, params=MISR, device="cpu") as up:
        given = [out for image in images for out in up.push(image)]
    assert len(given) + len(up.rest) == len(images)
    assert not up._worker.is_alive()
    with pytest.raises(vsr.ConfigError, match="closed"):
        up.push(images[0])


def test_method_errors_reach_the_caller_and_the_upscaler_goes_on(clip):
    with vsr.Upscaler("misr", scale=2, params=MISR, device="cpu") as up:
        with pytest.raises(Exception, match="12"):  # DIS flow needs 12 pixels
            up.push(np.zeros((8, 8, 3), np.uint8))
            up.push(np.zeros((8, 8, 3), np.uint8))
            up.flush()
        assert len(up(_decoded(clip)[0])) == 96


def test_the_callers_torch_settings_are_left_alone(clip, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        state = (torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype())
        with vsr.Upscaler("misr", scale=2, params=MISR, device="cpu") as up:
            for image in _decoded(clip):
                up.push(image)
                assert (torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype()) == state
            up.flush()
            stats = up.file(str(clip), str(tmp_path / "out.mkv"), encode=vsr.EncodeSettings(codec="ffv1"))
        assert (torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype()) == state
        assert not torch.is_inference_mode_enabled()
    finally:
        torch.set_num_threads(before)
    assert stats.frames_written == 8 and len(framemd5(tmp_path / "out.mkv")) == 8


def test_file_uses_the_loaded_method_and_refuses_another(clip, tmp_path):
    with vsr.Upscaler("bicubic", scale=2, device="cpu") as up:
        method = up.method
        up.file(str(clip), str(tmp_path / "a.mp4"), size=(100, 80))
        assert up.method is method and method.target_size is None
        assert up(np.zeros((4, 4, 3), np.uint8)).shape == (8, 8, 3)  # the run's size stayed with the run
        with pytest.raises(vsr.ConfigError, match="takes no method, scale"):
            up.file(str(clip), str(tmp_path / "b.mp4"), method="misr", scale=3)
        up.push(np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(vsr.ConfigError, match="flush"):
            up.file(str(clip), str(tmp_path / "b.mp4"))
    with vsr.Upscaler("misr", scale=2, params=vsr_params(), device="cpu") as up:
        assert up.method.params.window == 3


def vsr_params():
    """misr's parameters as their dataclass, which the Upscaler takes as well as a mapping."""
    from vsr.methods.misr.method import MisrParams

    return MisrParams(window=3, iterations=1)
