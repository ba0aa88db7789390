"""Windows: every frame is the reference once, padding repeats frames of the same shot only."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from vsr.engine.scenecut import SceneCutDetector
from vsr.engine.window import WindowAssembler, frame_windows, to_integer_hwc
from vsr.methods.samples import to_unit_float
from vsr.types import Frame


def _frames(n: int, cut_at: tuple[int, ...] = ()) -> list[Frame]:
    frames, shade = [], 0
    for i in range(n):
        if i in cut_at:
            shade = 1 - shade
        data = torch.full((3, 36, 64), 230 if shade else 20, dtype=torch.uint8)
        data[:, :, : (i % 5) + 1] = 128  # a little motion inside a shot
        frames.append(Frame(data=data, pts=i * 512, time_base=Fraction(1, 12800), index=i))
    return frames


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_every_frame_is_reference_once_in_order(radius, causal):
    frames = _frames(11)
    out = list(frame_windows(frames, radius, causal))
    assert [ref.index for ref, _ in out] == list(range(11))
    for ref, slots in out:
        assert len(slots) == 2 * radius + 1
        ref_slot = len(slots) - 1 if causal else radius
        assert slots[ref_slot] is ref
        indices = [s.index for s in slots]
        assert indices == sorted(indices)
        if causal:
            assert max(indices) == ref.index


def test_centred_window_pads_with_edge_frames():
    out = list(frame_windows(_frames(6), 2))
    assert [s.index for s in out[0][1]] == [0, 0, 0, 1, 2]
    assert [s.index for s in out[3][1]] == [1, 2, 3, 4, 5]
    assert [s.index for s in out[5][1]] == [3, 4, 5, 5, 5]


def test_windows_never_span_a_scene_cut():
    frames = _frames(10, cut_at=(5,))
    detector = SceneCutDetector()
    out = list(frame_windows(frames, 2, is_cut=detector.is_cut))
    assert detector.cuts == 1
    for ref, slots in out:
        same_shot = [s.index >= 5 for s in slots]
        assert all(same_shot) or not any(same_shot), [s.index for s in slots]
    assert [s.index for s in out[4][1]] == [2, 3, 4, 4, 4]
    assert [s.index for s in out[5][1]] == [5, 5, 5, 6, 7]


def test_scene_cut_detector_ignores_motion_within_a_shot():
    detector = SceneCutDetector()
    assert not any(detector.is_cut(f) for f in _frames(8))


def test_assembler_converts_each_frame_once_and_evicts():
    frames = _frames(8)
    assembler = WindowAssembler(torch.device("cpu"), torch.float32)
    windows = [assembler.assemble(slots, 1) for _, slots in frame_windows(frames, 1)]
    assert windows[3].indices == (2, 3, 4)
    assert windows[3].frames.shape == (3, 3, 36, 64)
    assert torch.equal(windows[3].frames[1], frames[3].data.float() / 255)
    assert len(assembler._cache) <= 3


def test_integer_round_trip_is_exact():
    data = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    back = to_integer_hwc(to_unit_float(data, torch.device("cpu"), torch.float32), 8)
    assert (torch.from_numpy(back).permute(2, 0, 1) == data).all()
    deep = torch.randint(0, 65536, (3, 5, 7), dtype=torch.int32).to(torch.uint16)
    back16 = to_integer_hwc(to_unit_float(deep, torch.device("cpu"), torch.float32), 10)
    assert (torch.from_numpy(back16.astype("int32")).permute(2, 0, 1) == deep.to(torch.int32)).all()


def test_to_integer_clips_overshoot_instead_of_folding_it():
    image = torch.tensor([-0.2, 0.5, 1.3]).view(3, 1, 1).expand(3, 2, 2).contiguous()
    out = to_integer_hwc(image, 8)
    assert out[0, 0].tolist() == [0, 128, 255]


def test_frame_validates_and_hides_pixels_in_repr():
    frame = Frame(data=torch.zeros(3, 4, 5), pts=25, time_base=Fraction(1, 25), index=0)
    assert frame.time == 1.0 and (frame.height, frame.width) == (4, 5)
    assert "shape=(3, 4, 5)" in repr(frame) and "tensor" not in repr(frame)
    with pytest.raises(ValueError, match="C, H, W"):
        Frame(data=torch.zeros(4, 5), pts=0, time_base=Fraction(1, 25), index=0)
