"""``vsr.frames()``: values in the documented range, and the caller's torch settings left alone."""

from __future__ import annotations

import pytest
import torch
from conftest import make_clip

import vsr


@pytest.fixture
def caller_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # more than one, so that a method's own choice would show
    yield 3
    torch.set_num_threads(before)


def test_misr_frames_are_in_range_and_leave_the_callers_settings(tmp_path, caller_threads):
    src = make_clip(tmp_path / "in.mp4", frames=10, size=(64, 48), audio=False)
    low, high, count = 1.0, 0.0, 0
    for frame in vsr.frames(str(src), "misr", 2, device="cpu", params={"threads": 2}):
        assert torch.get_num_threads() == caller_threads
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        assert frame.data.shape == (3, 96, 128) and frame.data.is_floating_point()
        low, high, count = min(low, frame.data.min().item()), max(high, frame.data.max().item()), count + 1
    assert count == 10
    assert 0.0 <= low and high <= 1.0
    assert high > 0.9 and low < 0.1  # the test picture spans the range: clamped, not squeezed
    assert torch.get_num_threads() == caller_threads and torch.is_grad_enabled()


def test_leaving_the_loop_early_restores_the_callers_settings(tmp_path, caller_threads):
    src = make_clip(tmp_path / "in.mp4", frames=10, size=(64, 48), audio=False)
    frames = vsr.frames(str(src), "misr", 2, device="cpu", params={"threads": 2})
    next(frames)
    assert torch.get_num_threads() == caller_threads and not torch.is_inference_mode_enabled()
    frames.close()
    assert torch.get_num_threads() == caller_threads
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
