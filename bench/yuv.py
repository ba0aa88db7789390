"""YUV <-> RGB on the CPU: swscale (the decoder's and encoder's host path) against the torch
conversion the device transport runs on CUDA, in the same run, on the same frames.

Why the CPU keeps swscale: this table. On CUDA the torch conversion runs beside the method on
the device (unmeasured here: no GPU).

    nice python bench/yuv.py                    # 1280x720 and 1920x1080 4:2:0, 8-bit
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, time_call


def measure(width: int, height: int, repeats: int) -> list[str]:
    """Milliseconds per frame of each direction, swscale and torch, at ``width`` x ``height``."""
    import av
    import numpy as np
    import torch

    from vsr.io.color import RgbConverter, YuvConverter, resolve_conversion
    from vsr.io.yuv import YuvFormat, rgb_to_yuv, unpack, yuv_to_rgb
    from vsr.types import ColorInfo

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    conversion = resolve_conversion(ColorInfo(matrix="bt709", range="tv"), height, "yuv420p")
    yuv_frame = YuvConverter(conversion, "yuv420p")(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    to_rgb, to_yuv = RgbConverter(conversion, "rgb24"), YuvConverter(conversion, "yuv420p")
    fmt = YuvFormat.of("yuv420p", conversion.colorspace, conversion.color_range, "left")
    planes = torch.from_numpy(yuv_frame.to_ndarray())
    rgb_tensor = torch.from_numpy(rgb).permute(2, 0, 1)

    def torch_decode():
        (yuv_to_rgb(*unpack(planes, fmt), fmt) * 255).round_().to(torch.uint8)

    timings = [
        time_call(lambda: to_rgb(yuv_frame), repeats),
        time_call(torch_decode, repeats),
        time_call(lambda: to_yuv(av.VideoFrame.from_ndarray(rgb, format="rgb24")), repeats),
        time_call(lambda: rgb_to_yuv(rgb_tensor, fmt), repeats),
    ]
    return [f"{width}x{height}", *(f"{1000 * t:.1f}" for t in timings),
            f"{timings[1] / timings[0]:.1f}x", f"{timings[3] / timings[2]:.1f}x"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import torch

    load = os.getloadavg()[0]
    rows = [measure(w, h, args.repeats) for w, h in ((1280, 720), (1920, 1080))]
    print(f"{machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads); median of {args.repeats}; "
          f"1-minute load average {load:.1f} to {os.getloadavg()[0]:.1f}")
    print_table("YUV 4:2:0 <-> RGB on the CPU, ms per frame",
                ["frame", "swscale to RGB", "torch to RGB", "swscale to YUV", "torch to YUV",
                 "torch/swscale to RGB", "torch/swscale to YUV"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
