"""Helpers shared by the benchmark scripts: timing child processes, peak memory, tables."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

_CHILD = (
    "import resource, subprocess, sys, time, json\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "dt = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': r.returncode, 'seconds': dt, 'peak_kib': u.ru_maxrss, 'cpu': u.ru_utime + u.ru_stime,\n"
    "                  'err': r.stderr.decode()[-400:]}))\n"
)


@dataclass
class Measure:
    """One timed command: median wall seconds over repeats, peak resident memory (MiB) and
    median CPU seconds (user + system; steadier than wall time on a shared machine)."""

    seconds: float
    peak_mib: float
    runs: list[float]
    cpu_seconds: float | None = None


def time_command(argv: list[str], repeats: int = 3) -> Measure:
    """Run ``argv`` ``repeats`` times in a fresh child each; median wall and CPU time, max peak RSS.

    Raises:
        RuntimeError: the command failed (its last stderr lines are in the message).
    """
    runs, peaks, cpu = [], [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
        if result["rc"] != 0:
            raise RuntimeError(f"{argv[0]} failed: {result['err']}")
        runs.append(result["seconds"])
        peaks.append(result["peak_kib"] / 1024)
        cpu.append(result["cpu"])
    return Measure(statistics.median(runs), max(peaks), runs, statistics.median(cpu))


def measure_call(fn, repeats: int = 3) -> Measure:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls in this process.

    CPU is user + system time of the whole process (every thread, the encoder's included);
    ``peak_mib`` is the process's peak resident memory so far.
    """
    import resource

    runs, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measure(statistics.median(runs), peak, runs, statistics.median(cpu))


def time_call(fn, repeats: int = 3) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls."""
    return measure_call(fn, repeats).seconds


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped in the imageio-ffmpeg package."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a table with rich (plain text when not a terminal, so it can go into RESULTS.md)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def synchronize(device: str) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU), before reading a clock."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: str = "cpu") -> str:
    """A one-line description of this machine for the results file, the GPU first when ``device`` is one."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if device == "cpu":
        return host
    import torch

    return f"{torch.cuda.get_device_name(device)} with {host}"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, for a table's title (CPU times mean more under load)."""
    import os

    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())
