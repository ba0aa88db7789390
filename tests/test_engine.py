"""The one frame loop: the Python iterator goes through it as the pipeline does."""

from __future__ import annotations

import torch
from conftest import make_clip

import vsr
from vsr.engine.window import to_integer_hwc


def test_frames_gives_what_the_pipeline_encodes_as_floats_in_0_1(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=(64, 48))
    out = list(vsr.frames(str(src), method="bicubic", scale=2, device="cpu"))
    assert len(out) == 6
    for frame in out:
        assert frame.data.dtype == torch.float32 and frame.data.shape == (3, 96, 128)
        assert 0.0 <= frame.data.min() and frame.data.max() <= 1.0
    # The integer path a pipeline run takes (OpenCV on uint8) and the iterator's floats agree.
    from vsr.io.decode import Decoder
    from vsr.methods.build import build_method

    method = build_method("bicubic", 2, {}, "cpu")
    with Decoder(str(src)) as decoder:
        first = next(iter(decoder.frames()))
    direct = method(first.data[None], 0)
    assert direct.dtype == torch.uint8  # integer_io on the CPU
    assert (to_integer_hwc(out[0].data, 8) == direct.permute(1, 2, 0).numpy()).all()
    assert [f.pts for f in out] == sorted(f.pts for f in out)
