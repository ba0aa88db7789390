"""Progress displays: a rich live bar for people, JSON lines for programs."""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from vsr.engine.queues import RunStats


def _eta(stats: RunStats) -> float | None:
    if not stats.frame_count or stats.fps <= 0:
        return None
    return max(0.0, (stats.frame_count - stats.frames_written) / stats.fps)


def snapshot(stats: RunStats) -> dict[str, object]:
    """The progress figures as a JSON-able dict."""
    return {
        "frames": stats.frames_written,
        "total": stats.frame_count,
        "decoded": stats.frames_decoded,
        "processed": stats.frames_processed,
        "fps": round(stats.fps, 3),
        "elapsed": round(stats.elapsed, 3),
        "eta": None if _eta(stats) is None else round(_eta(stats), 1),
        "queues": {name: {"items": n, "capacity": cap} for name, (n, cap) in stats.queues.items()},
        "corrupt_packets": stats.corrupt_packets,
        "dropped": stats.frames_dropped,
        "reconnects": stats.reconnects,
        "latency_ms": None if stats.latency is None else round(1000 * stats.latency, 1),
        "latency_max_ms": round(1000 * stats.latency_max, 1),
        "cancelled": stats.cancelled,
    }


class JsonProgress:
    """Writes one JSON object per update to ``stream`` (standard error by default).

    A reader that goes away (a closed pipe) ends the updates, not the run: the stream is
    pointed at ``/dev/null`` so that nothing written to it later fails either.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.gone = False

    def __call__(self, stats: RunStats) -> None:
        if self.gone:
            return
        try:
            self.stream.write(json.dumps(snapshot(stats)) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self.gone = True
            silence(self.stream)

    def close(self) -> None:
        pass


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at ``/dev/null`` (its reader has gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass

    def close(self) -> None:
        pass


class Recorder:
    """Keeps every progress snapshot (for the run report) and passes the stats on to ``display``.

    Attributes:
        samples: the :func:`snapshot` dicts, in order; ``elapsed`` is their time axis.
    """

    def __init__(self, display=None) -> None:
        self.display = display
        self.samples: list[dict[str, object]] = []

    def __call__(self, stats: RunStats) -> None:
        self.samples.append(snapshot(stats))
        if self.display is not None:
            self.display(stats)

    def close(self) -> None:
        if self.display is not None:
            self.display.close()


class RichProgress:
    """A live bar: frames done (of total when known), fps, ETA and each queue's fill."""

    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.1f} fps"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[queues]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=None, fps=0.0, eta="?", queues="")
        self.progress.start()

    def __call__(self, stats: RunStats) -> None:
        eta = _eta(stats)
        queues = " ".join(f"{name} {n}/{cap}" for name, (n, cap) in stats.queues.items())
        if stats.latency is not None:
            queues += f" latency {1000 * stats.latency:.0f} ms"
        if stats.frames_dropped:
            queues += f" dropped {stats.frames_dropped}"
        if stats.reconnects:
            queues += f" reconnects {stats.reconnects}"
        self.progress.update(
            self.task,
            completed=stats.frames_written,
            total=stats.frame_count,
            fps=stats.fps,
            eta="?" if eta is None else f"{int(eta) // 60}:{int(eta) % 60:02d}",
            queues=f"queues {queues}" if queues else "",
        )

    def close(self) -> None:
        self.progress.stop()
