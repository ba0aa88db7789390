"""MISR speed: frames/s of misr x2 (window 5) on a 640x360 clip, beside bicubic on the same clip.

First the whole pipeline (``vsr.upscale``: decode, method, libx264 encode, audio copied) for
bicubic and misr; then the method alone on frames decoded up front, and the cost of each
stage apart: decode, flow (DIS, on its own thread), fusion (torch) and encode.

    python bench/misr.py [--clip PATH] [--frames 40] [--scale 2] [--param key=value ...] [--also srcnn]
                         [--device cuda]

``--device``: where the methods run (default ``cpu``); on CUDA the flow stays on the CPU (DIS),
the fusion runs on the device, and the method-alone rows wait for the device before stopping
the clock.

``--also``: other registered methods (comma-separated) timed the same way, pipeline and alone.

``--host-threads CV:TORCH ...``: instead of the table above, misr's defaults through the whole
pipeline once per pair, each in a fresh process that first sets OpenCV's and torch's thread
counts (``cv2.setNumThreads``, ``torch.set_num_threads``; 0 leaves one as it is): what the
host's threads cost beside a GPU, where the fusion no longer needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    load_average,
    machine,
    measure_call,
    print_table,
    synchronize,
    time_call,
)
from quality import parse_params, windows


def decode(clip: str, limit: int) -> list:
    """The first ``limit`` frames of ``clip`` as ``(H, W, 3)`` uint8 RGB arrays."""
    from vsr.quality import read_frames

    return read_frames(clip, limit)


def run(frames: list, scale: int, params: dict, method_name: str = "misr", device: str = "cpu") -> dict[str, float]:
    """Time ``method_name`` on ``device`` over ``frames`` (list of uint8 RGB arrays) through ``stream``.

    Returns:
        ``fps`` of the whole method and ``cpu_ms``, the CPU it took per frame; for misr also
        ``flow_ms`` (one DIS pair per frame plus the composition, measured alone) and
        ``fuse_ms`` (fusion alone), wall per frame, and their CPU, ``flow_cpu_ms`` and ``fuse_cpu_ms``.
    """
    from vsr.methods.base import Window
    from vsr.methods.registry import get_method

    method = get_method(method_name, scale=scale, **(params if method_name == "misr" else {})).to(device)
    wins = [Window(w.frames.to(method.device, method.dtype), w.ref, w.indices) for w in windows(frames, method.radius)]

    def stream() -> None:
        for _ in method.stream(wins):
            pass
        synchronize(device)

    cost = measure_call(stream, 1)
    result = {"fps": len(frames) / cost.seconds, "cpu_ms": 1000 * cost.cpu_seconds / len(frames)}
    if method_name == "misr":
        result.update(_shares(method, wins, device))
    return result


def _shares(method, wins: list, device: str = "cpu") -> dict[str, float]:
    """Flow and fusion timed apart (no overlap; the fusion on one thread, as in the stream's pool),
    wall and CPU ms per frame."""
    bank = method.flow_bank()
    cache: dict = {}
    starts = []

    def flow() -> None:
        for w in wins:
            started = method._start(bank, w, cache)
            started[1].result()
            starts.append(started)

    def fuse() -> None:
        cfg = method._fuse_config()
        for win, fut in starts:
            method._finish(win, fut, cache, cfg)
        synchronize(device)

    import torch

    flow_cost = measure_call(flow, 1)
    # One thread, as each of the stream's fusion workers has: torch's own threads would spin
    # between the small steps and count their waiting as CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fuse_cost = measure_call(fuse, 1)
    finally:
        torch.set_num_threads(threads)
    bank.close()
    n = len(wins)
    return {"flow_ms": 1000 * flow_cost.seconds / n, "fuse_ms": 1000 * fuse_cost.seconds / n,
            "flow_cpu_ms": 1000 * flow_cost.cpu_seconds / n, "fuse_cpu_ms": 1000 * fuse_cost.cpu_seconds / n}


def pipeline_fps(clip: str, method: str, scale: int, params: dict, device: str = "cpu") -> tuple[float, float]:
    """Frames/s of ``vsr.upscale`` on ``device`` (decode, method, default libx264 encode) over the
    whole clip, and the CPU it took (every thread of the process), ms per frame."""
    import vsr

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cost = measure_call(lambda: runs.append(vsr.upscale(clip, os.path.join(tmp, "out.mp4"), method, scale,
                                                            params=params or None, overwrite=True,
                                                            device=device)), 1)
    stats = runs[0]
    return stats.frames_written / stats.elapsed, 1000 * cost.cpu_seconds / stats.frames_written


def _pipeline_row(label: str, clip: str, method: str, scale: int, params: dict, device: str) -> list[str]:
    fps, cpu_ms = pipeline_fps(clip, method, scale, params, device)
    return [f"pipeline: {label}", f"{fps:.2f}", "", "", f"{cpu_ms:.0f}"]


def decode_encode_ms(clip: str, frames: list, scale: int) -> tuple[float, float]:
    """ms/frame to decode ``clip`` to RGB, and to encode frames of the output size (default libx264)."""
    import cv2

    from vsr.io.decode import Decoder
    from vsr.io.encode import EncodeSettings, Sink

    with Decoder(clip) as dec:
        info = dec.info
        t = time.perf_counter()
        n = sum(1 for _ in dec.frames())
        decode = (time.perf_counter() - t) / n
    big = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for f in frames]
    with tempfile.TemporaryDirectory() as tmp:
        def encode() -> None:
            sink = Sink(os.path.join(tmp, "enc.mp4"), info, EncodeSettings())
            for i, array in enumerate(big):
                sink.write_frame(array, i * 512)
            sink.close()

        encode_s = time_call(encode, 1) / len(big)
    return 1000 * decode, 1000 * encode_s


def host_threads_child(cv_threads: int, torch_threads: int, clip: str, scale: int, device: str) -> dict:
    """One pipeline run of misr's defaults after setting the host's thread counts (0: as they are)."""
    import cv2
    import torch

    if cv_threads:
        cv2.setNumThreads(cv_threads)
    if torch_threads:
        torch.set_num_threads(torch_threads)
    fps, cpu_ms = pipeline_fps(clip, "misr", scale, {}, device)
    return {"cv": cv2.getNumThreads(), "torch": torch.get_num_threads(), "fps": fps, "cpu_ms": cpu_ms}


def host_threads(args) -> None:
    """The ``--host-threads`` table: one fresh process per ``CV:TORCH`` pair, in the order given."""
    rows = []
    for pair in args.host_threads:
        cv_threads, torch_threads = (int(x) for x in pair.split(":"))
        out = subprocess.run([sys.executable, __file__, "--clip", args.clip, "--scale", str(args.scale),
                              "--device", args.device, "--threads-child", str(cv_threads), str(torch_threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append([str(r["cv"]), str(r["torch"]), f"{r['fps']:.2f}", f"{r['cpu_ms']:.0f}"])
    print_table(f"misr defaults through the pipeline, {Path(args.clip).name} x{args.scale} on {args.device}; "
                f"{machine(args.device)}",
                ["OpenCV threads", "torch threads", "frames/s", "CPU ms/frame"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(ROOT / "samples" / "chaplin.mp4"))
    ap.add_argument("--frames", type=int, default=40, help="frames for the method-alone rows")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    ap.add_argument("--also", default="", help="other methods to time beside misr, comma-separated")
    ap.add_argument("--device", default="cpu", help="where the methods run: cpu or cuda[:N]")
    ap.add_argument("--host-threads", nargs="+", metavar="CV:TORCH",
                    help="time misr's pipeline with these OpenCV:torch thread counts instead (0: default)")
    ap.add_argument("--threads-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads_child:
        print(json.dumps(host_threads_child(*args.threads_child, args.clip, args.scale, args.device)))
        return
    if args.host_threads:
        host_threads(args)
        return
    device = args.device
    also = [m for m in args.also.split(",") if m]

    frames = decode(args.clip, args.frames)
    h, w = frames[0].shape[:2]
    params = parse_params(args.param)
    presets = [("misr defaults", {})] if not params else [("misr " + str(params), params)]
    if not params:
        presets.append(("misr fast (ultrafast flow, 3 iterations)", {"flow_preset": "ultrafast", "iterations": 3}))

    rows = [_pipeline_row("bicubic", args.clip, "bicubic", args.scale, {}, device)]
    for label, p in presets:
        rows.append(_pipeline_row(label, args.clip, "misr", args.scale, p, device))
    for m in also:
        rows.append(_pipeline_row(m, args.clip, m, args.scale, {}, device))
    alone = run(frames, args.scale, {}, "bicubic", device)
    rows.append(["method alone: bicubic", f"{alone['fps']:.1f}", "", "", f"{alone['cpu_ms']:.1f}"])
    for label, p in presets:
        r = run(frames, args.scale, p, "misr", device)
        rows.append([f"method alone: {label}", f"{r['fps']:.2f}",
                     f"{r['flow_ms']:.0f} flow (CPU {r['flow_cpu_ms']:.0f})",
                     f"{r['fuse_ms']:.0f} fusion (CPU {r['fuse_cpu_ms']:.0f})", f"{r['cpu_ms']:.0f}"])
    for m in also:
        alone = run(frames, args.scale, {}, m, device)
        rows.append([f"method alone: {m}", f"{alone['fps']:.2f}", "", "", f"{alone['cpu_ms']:.0f}"])
    dec, enc = decode_encode_ms(args.clip, frames, args.scale)
    rows.append(["decode alone (to RGB)", f"{1000 / dec:.0f}", f"{dec:.1f} decode", "", ""])
    rows.append([f"encode alone ({w * args.scale}x{h * args.scale} libx264 medium)", f"{1000 / enc:.0f}",
                 f"{enc:.1f} encode", "", ""])
    print_table(f"{Path(args.clip).name} {w}x{h} -> x{args.scale}, window 5, on {device}; {machine(device)}; "
                f"at the end: {load_average()}",
                ["job", "frames/s", "ms/frame", "ms/frame", "CPU ms/frame"], rows)


if __name__ == "__main__":
    main()
