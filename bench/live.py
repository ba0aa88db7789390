"""Live path: reconnect time after an RTSP server restart, and the latency each method adds.

Reconnect: vsr reads the loopback GStreamer RTSP server (tests/servers/rtsp_server.py) with
live mode and reconnects on; after some frames the server is killed and started again
after a gap. Reconnect time runs from the server being ready again to the next frame vsr
writes (it includes what is left of vsr's backoff wait and FFmpeg's probing of the new
session); the output is read back to check its timestamps still strictly increase.

Latency: a paced lavfi ``testsrc2`` source (frames arrive at the stream's rate, like a
camera) through live mode, one run per method. Latency is vsr's own figure: a decoded frame
leaving the decoder to reaching the encoder (decoding and encoding not included). Dropped
frames are the ones the method could not keep up with. Rates are over the whole run,
including the frames still queued when the source ends.

    python bench/live.py [--seconds 20] [--size 320x180] [--rate 25] [--restarts 3] [--gap 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, print_table  # noqa: E402

SERVER = ROOT / "tests" / "servers" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # has the GStreamer bindings
SERVER_FPS = 25
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("nearest", "nearest", {}),
    ("bicubic", "bicubic", {}),
    ("lanczos", "lanczos", {}),
    ("misr causal", "misr", {"causal": True}),
    ("misr causal ultrafast 3 it", "misr", {"causal": True, "flow_preset": "ultrafast", "iterations": 3}),
]


class RtspServer:
    """The GStreamer test server in a child process; can be killed and started again."""

    def __init__(self) -> None:
        with socket.socket() as s:  # a free port, kept across restarts
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/test"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start the server; ``time.monotonic()`` when it says it listens."""
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.port), "160x120", str(SERVER_FPS)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the RTSP server did not start (exit {self.proc.wait()})")
        return time.monotonic()

    def stop(self) -> float:
        """Kill the server; ``time.monotonic()`` when it is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        return time.monotonic()


@dataclass
class Restart:
    """One server restart as vsr saw it (times in seconds)."""

    before: int  # frames written from the first connection
    after: int  # frames written after the reconnect
    read_back: int  # video frames in the output file
    reconnects: int
    reopened_s: float  # server ready again -> vsr has reopened the stream
    reconnect_s: float  # server ready again -> next frame written
    outage_s: float  # server killed -> next frame written
    increasing: bool  # output pts strictly increase
    largest_step_s: float  # widest pts step of the output


def wait_for(predicate: Callable[[], bool], run: Future, limit: float = 30.0) -> float:
    """Poll ``predicate`` every 5 ms; ``time.monotonic()`` once true.

    Raises:
        RuntimeError: the run ended first (its own error is raised instead, if it failed),
            or ``limit`` seconds passed.
    """
    deadline = time.monotonic() + limit
    while not predicate():
        if run.done():
            run.result()
            raise RuntimeError("vsr ended before the condition was met")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {limit:g} s")
        time.sleep(0.005)
    return time.monotonic()


def in_thread(fn: Callable[[], object]) -> Future:
    """Run ``fn`` in a daemon thread; its result or exception lands in the returned future."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=work, daemon=True).start()
    return future


def restart_once(server: RtspServer, out: str, frames: int, gap: float, timeout: float) -> Restart:
    """Read ``server`` with vsr, kill it after ``frames`` frames, restart it ``gap`` s later."""
    import av

    import vsr
    from vsr.io.source import OpenOptions
    from vsr.engine.queues import Pipeline

    pipelines: list[Pipeline] = []
    server.start()

    def upscale() -> None:
        try:
            vsr.upscale(server.url, out, method="nearest", live=True, reconnect=10, overwrite=True,
                        open_options=OpenOptions(timeout=timeout), on_start=pipelines.append)
        except vsr.Cancelled:
            pass

    run = in_thread(upscale)
    try:
        wait_for(lambda: bool(pipelines) and pipelines[0].stats.frames_written >= frames, run)
        stats = pipelines[0].stats
        killed = server.stop()
        time.sleep(gap)
        ready = server.start()
        before = stats.frames_written  # what was in flight at the kill has long been written
        reopened = wait_for(lambda: pipelines[0].decoder.stats.reconnects > 0, run)
        first = wait_for(lambda: stats.frames_written > before, run)
        wait_for(lambda: stats.frames_written >= before + frames, run)
        pipelines[0].cancel()
        run.result()
    finally:
        if pipelines and not run.done():
            pipelines[0].cancel()
        server.stop()
    with av.open(out) as container:
        stream = container.streams.video[0]
        pts = [f.pts for f in container.decode(stream)]
        steps = [b - a for a, b in zip(pts, pts[1:])]
        return Restart(before, stats.frames_written - before, len(pts), stats.reconnects, reopened - ready,
                       first - ready, first - killed, min(steps) > 0, max(steps) * float(stream.time_base))


def reconnect_table(args: argparse.Namespace, tmp: str) -> None:
    """Restart the server ``args.restarts`` times (a fresh vsr run each) and print the table."""
    server = RtspServer()
    results = [restart_once(server, os.path.join(tmp, f"restart{i}.mkv"), args.frames, args.gap, args.timeout)
               for i in range(args.restarts)]
    rows = [[str(i), str(r.before), str(r.after), str(r.read_back), str(r.reconnects), f"{1000 * r.reopened_s:.0f}",
             f"{1000 * r.reconnect_s:.0f}", f"{1000 * r.outage_s:.0f}", "yes" if r.increasing else "NO",
             f"{1000 * r.largest_step_s:.0f}"] for i, r in enumerate(results, 1)]
    rows.append(["median", "", "", "", "", f"{1000 * statistics.median(r.reopened_s for r in results):.0f}",
                 f"{1000 * statistics.median(r.reconnect_s for r in results):.0f}",
                 f"{1000 * statistics.median(r.outage_s for r in results):.0f}", "", ""])
    print_table(f"reconnect: RTSP 160x120@{SERVER_FPS} through --live nearest x2, server killed after "
                f"{args.frames} frames and restarted {args.gap:g} s later, --timeout {args.timeout:g} -- {machine()}",
                ["run", "frames before", "frames after", "frames read back", "reconnects", "ready→reopened ms",
                 "ready→frame ms", "kill→frame ms", "pts increasing", "largest pts step ms"], rows)


def latency_table(args: argparse.Namespace, tmp: str) -> None:
    """One paced run per method in :data:`METHODS`; print the table."""
    import vsr
    from vsr.io.source import OpenOptions

    graph = f"testsrc2=size={args.size}:rate={args.rate}:duration={args.seconds:g},realtime"
    rows = []
    for label, method, params in METHODS:
        stats = vsr.upscale(graph, os.path.join(tmp, "latency.ts"), method=method, params=params, scale=2,
                            live=True, overwrite=True, open_options=OpenOptions(format="lavfi"),
                            encode=vsr.EncodeSettings(preset="ultrafast"))
        minutes = stats.elapsed / 60
        rows.append([label, f"{stats.frames_decoded / stats.elapsed:.1f}", f"{stats.fps:.1f}",
                     f"{1000 * (stats.latency_mean or 0):.0f}", f"{1000 * stats.latency_max:.0f}",
                     str(stats.frames_written), str(stats.frames_dropped), f"{stats.frames_dropped / minutes:.0f}"])
    print_table(f"latency: {args.seconds:g} s of {args.size}@{args.rate} testsrc2, paced, through --live x2, "
                f"libx264 ultrafast -- {machine()}",
                ["method", "source fps", "output fps", "latency mean ms", "latency max ms", "frames written",
                 "dropped", "dropped/min"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each latency run")
    parser.add_argument("--size", default="320x180", help="size of the synthetic source")
    parser.add_argument("--rate", type=int, default=25, help="frames/s of the synthetic source")
    parser.add_argument("--restarts", type=int, default=3, help="server restarts (one vsr run each); 0 skips them")
    parser.add_argument("--frames", type=int, default=75, help="frames written before the kill and after the restart")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds the server stays down")
    parser.add_argument("--timeout", type=float, default=3.0, help="vsr's network timeout (--timeout)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.restarts:
            reconnect_table(args, tmp)
        latency_table(args, tmp)


if __name__ == "__main__":
    main()
