"""The floor under `bench/neural.py`'s rows: each stage alone, at the same sizes.

Each network alone as vsr runs it on the device (its precision and channels-last layout, in
``torch.inference_mode``), on random frames of the row's input size, batch 1 and 4, eager and
through ``torch.compile``, timed between device synchronisations after two warm-up calls
(the compile happens in those; its time is printed). Then libx264 alone, as vsr's ``Sink``
writes it (veryfast, crf 18, as `bench/neural.py` encodes), over 30 frames of
samples/chaplin.mp4 resized to each row's output size. A pipeline row cannot beat the slower of
its network and its encoder.

    python bench/floor.py [--device cuda] [--models realesrgan realesr-video waifu2x-photo]
                          [--no-compile]

The sizes are `bench/neural.py`'s: its GPU sizes on CUDA, its small CPU sizes otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, print_table, synchronize
from neural import CASES, ENCODE, GPU_CASES


def network_fps(net, batch: int, height: int, width: int, device: str) -> tuple[float, float]:
    """Frames/s of ``net`` on random ``(batch, 3, height, width)`` frames in its own dtype,
    channels-last, and the seconds its two warm-up calls took."""
    import torch

    dtype = next(net.parameters()).dtype
    x = torch.rand(batch, 3, height, width, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(2):
            net(x)
        synchronize(device)
        warm = time.perf_counter() - start
        calls = max(2, 8 // batch)
        start = time.perf_counter()
        for _ in range(calls):
            net(x)
        synchronize(device)
        return batch * calls / (time.perf_counter() - start), warm


def encode_fps(width: int, height: int, frames: int = 30) -> float:
    """Frames/s of vsr's libx264 sink (veryfast, crf 18) over chaplin's frames resized to ``width x height``."""
    import cv2

    from vsr.io.decode import Decoder
    from vsr.io.encode import EncodeSettings, Sink

    with Decoder(str(ROOT / "samples" / "chaplin.mp4")) as decoder:
        info = decoder.info
        pictures = [cv2.resize(f.data.permute(1, 2, 0).numpy(), (width, height), interpolation=cv2.INTER_CUBIC)
                    for _, f in zip(range(frames), decoder.frames())]
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink(os.path.join(tmp, "floor.mp4"), info,
                    EncodeSettings(preset=ENCODE["preset"], crf=float(ENCODE["crf"])))
        start = time.perf_counter()
        for index, picture in enumerate(pictures):
            sink.write_frame(picture, index * 512)
        sink.close()
        return len(pictures) / (time.perf_counter() - start)


def main() -> int:
    import torch

    from vsr.methods.registry import get_method

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--no-compile", action="store_true", help="eager only (compiling takes up to minutes)")
    args = parser.parse_args()
    cases = GPU_CASES if args.device != "cpu" else CASES
    rows, outputs = [], []
    for case in args.models:
        name, scale, width, height, _ = cases[case]
        net = get_method(name, scale=scale).to(args.device).net
        for compiled in (False,) if args.no_compile else (False, True):
            runner = torch.compile(net) if compiled else net
            for batch in (1, 4):
                fps, warm = network_fps(runner, batch, height, width, args.device)
                rows.append([f"{name} {width}x{height} -> x{scale}", "compiled" if compiled else "eager", str(batch),
                             str(next(net.parameters()).dtype).removeprefix("torch."), f"{fps:.1f}",
                             f"{warm:.1f}"])
        outputs.append((width * scale, height * scale))
        del net, runner
        if args.device != "cpu":
            torch.cuda.empty_cache()
    for width, height in dict.fromkeys(outputs):
        rows.append([f"libx264 {ENCODE['preset']} crf {ENCODE['crf']} encode, {width}x{height}", "", "", "",
                     f"{encode_fps(width, height):.1f}", ""])
    print_table(f"each stage alone on {machine(args.device)}",
                ["stage", "mode", "batch", "dtype", "frames/s", "warm-up s"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
