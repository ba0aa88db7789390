"""The run report (``vsr run --report run.html``): what one run read, did, wrote and checked.

The page shows the input and output streams, the verification, the method and its
parameters, sha256 of the input, the output and the model weights, throughput, queue fill,
latency, drops and reconnects over time (from the progress samples), and chosen frames
before and after with misr's evidence maps. The same facts go into the page as JSON and,
with ``--record``, into the record.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vsr.io.source import mask_url
from vsr.report.pages import render, write_atomically

_FRAMES_SHOWN = 3
_RATE_WINDOW = 2.0  # seconds of progress samples behind each throughput point


def _stream_facts(path: str, video_stream: int | None = None) -> dict[str, Any]:
    from vsr.io.source import probe

    info = probe(path, video_stream)
    return {
        "video": {"width": info.width, "height": info.height, "codec": info.codec, "pix_fmt": info.pix_fmt,
                  "bit_depth": info.bit_depth, "color": asdict(info.color),
                  "rate": float(info.average_rate) if info.average_rate else None,
                  "duration": info.duration, "frames": info.frame_count, "rotation": info.rotation},
        "streams": [asdict(s) for s in info.streams],
    }


def _weights(model: str | None) -> list[dict[str, str]]:
    """sha256 of the weights behind a neural method (``model``: a manifest name or a file):
    the manifest's (checked when the model loaded) or the file's."""
    if not model:
        return []
    from vsr.errors import ModelError
    from vsr.models.loader import get_spec, sha256_file

    if Path(str(model)).is_file():
        return [{"name": str(model), "sha256": sha256_file(str(model))}]
    try:
        spec = get_spec(str(model))
    except ModelError:
        return [{"name": str(model), "sha256": "unknown"}]
    return [{"name": f"{spec.name} ({spec.filename})", "sha256": spec.sha256}]


def run_facts(*, argv: list[str], source: str, output: str, method: dict[str, Any], encode, stats,
              samples: list[dict[str, Any]], verification, video_stream: int | None,
              model: str | None = None) -> dict[str, Any]:
    """Everything the report states, as JSON-able data (the page renders this dict).

    ``model`` is the model name or file the run was given (default: the method's own).
    """
    from vsr.models.loader import sha256_file
    from vsr.verify import can_read_back

    def side(path: str, stream: int | None) -> dict[str, Any]:
        if not can_read_back(path):
            return {"sha256": None, "note": f"{mask_url(path)} is a stream: not read back"}
        return {"sha256": sha256_file(path), **_stream_facts(path, stream)}

    return {
        "command": " ".join(shlex.quote(mask_url(a)) for a in ["vsr", *argv[1:]]),
        "input": {"source": mask_url(source), **side(source, video_stream)},
        "output": {"path": mask_url(output), **side(output, None)},
        "method": {k: v for k, v in method.items() if v is not None},
        "encode": asdict(encode),
        "weights": _weights(model or method.get("model")),
        "run": {"frames_decoded": stats.frames_decoded, "frames_written": stats.frames_written,
                "elapsed": stats.elapsed, "fps": stats.fps, "corrupt_packets": stats.corrupt_packets,
                "dropped": stats.frames_dropped, "reconnects": stats.reconnects,
                "scene_cuts": stats.scene_cuts, "packets_copied": stats.packets_passed,
                "cancelled": stats.cancelled, "dropped_streams": stats.dropped_streams},
        "verification": verification.as_dict() if verification is not None else None,
        "progress": samples,
    }


def progress_charts(samples: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Throughput, queue fill, latency, and drops and reconnects over the run's elapsed time."""
    from vsr.report import plots

    if len(samples) < 2:
        return []
    t = [s["elapsed"] for s in samples]
    rate: list[float | None] = []
    first = 0
    for s in samples:  # frames written over the last _RATE_WINDOW seconds: samples are too close for one
        while samples[first]["elapsed"] < s["elapsed"] - _RATE_WINDOW:
            first += 1
        span = s["elapsed"] - samples[first]["elapsed"]
        rate.append((s["frames"] - samples[first]["frames"]) / span if span > 0 else None)
    charts = [{"title": f"Throughput ({_RATE_WINDOW:g} s window)",
               "svg": plots.lines(t, {"frames/s": rate}, ylabel="frames/s", ymin=0)}]
    names = list(samples[-1]["queues"])
    fill = {f"{n} queue": [s["queues"].get(n, {}).get("items") for s in samples] for n in names}
    if fill:
        capacity = max(s["queues"][n]["capacity"] for s in samples for n in s["queues"])
        charts.append({"title": f"Queue fill (capacity {capacity})",
                       "svg": plots.lines(t, fill, ylabel="frames waiting", step=True, ymin=0, integer=True)})
    latency = [s["latency_ms"] for s in samples]
    if any(v is not None for v in latency):
        charts.append({"title": "Latency, decode to encode",
                       "svg": plots.lines(t, {"latency": latency}, ylabel="ms", ymin=0)})
    charts.append({"title": "Drops, reconnects, damaged packets",
                   "svg": plots.lines(t, {"frames dropped": [s["dropped"] for s in samples],
                                          "reconnects": [s["reconnects"] for s in samples],
                                          "damaged packets": [s["corrupt_packets"] for s in samples]},
                                      ylabel="count", step=True, ymin=0, integer=True)})
    return charts


def write_run_report(path: str, *, argv: list[str], source: str, output: str, method: dict[str, Any], encode,
                     stats, samples: list[dict[str, Any]], verification, video_stream: int | None = None,
                     evidence: str | None = None, record: str | None = None,
                     model: str | None = None) -> dict[str, Any]:
    """Write the report page to ``path`` (and add its facts to the JSON ``record`` if it exists).

    Args:
        path: the HTML file to write (atomically).
        argv: the command line, shown with credentials masked.
        source, output: the run's input and output.
        method: the method's :meth:`~vsr.methods.base.Method.describe`.
        encode: the :class:`~vsr.io.encode.EncodeSettings` used.
        stats: the run's final :class:`~vsr.engine.queues.RunStats`.
        samples: the progress snapshots (:class:`vsr.progress.Recorder`).
        verification: the :class:`~vsr.verify.Verification`, or ``None`` with ``--no-verify``.
        video_stream: the input's video stream, when not the default one.
        evidence: misr's evidence folder, to overlay on the frames shown.
        record: the run's JSON record, amended with these facts.
        model: the model name or file given to a neural method.

    Returns:
        The facts (see :func:`run_facts`).

    Raises:
        OutputError: the page cannot be written.
    """
    from vsr.report.compare import default_times, frame_views
    from vsr.verify import can_read_back

    facts = run_facts(argv=argv, source=source, output=output, method=method, encode=encode, stats=stats,
                      samples=samples, verification=verification, video_stream=video_stream, model=model)
    views: list[dict[str, Any]] = []
    frames_note = ""
    if can_read_back(source) and can_read_back(output) and video_stream is None:
        times = default_times(output)[:_FRAMES_SHOWN]
        views = frame_views([source, output], [f"input: {Path(source).name}", f"output: {Path(output).name}"],
                            times, evidence=evidence)
    else:
        frames_note = "Frames are shown for file inputs and outputs of the default video stream."
    method_rows = [(f"{key} {sub}" if sub else key, value) for key, sub, value in _rows(facts["method"])]
    method_rows += [(f"encode {key}", value) for key, value in facts["encode"].items() if value]
    facts_json = json.dumps(facts, indent=2, default=str)
    write_atomically(path, render("run.html.j2", title=f"vsr run: {Path(output).name}", facts=facts,
                                  facts_json=facts_json.replace("</", "<\\/"), charts=progress_charts(samples),
                                  views=views, frames_note=frames_note, method_rows=method_rows))
    if record:
        amend_record(record, {"verification": facts["verification"], "input_streams": facts["input"],
                              "output_streams": facts["output"], "weights": facts["weights"],
                              "progress": samples})
    return facts


def _rows(mapping: dict[str, Any]):
    """``(key, sub-key, value)`` for a mapping whose values may be mappings (one level)."""
    for key, value in mapping.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                if inner is not None:
                    yield key, sub, inner
        else:
            yield key, "", value


def amend_record(path: str, sections: dict[str, Any]) -> None:
    """Add ``sections`` to the JSON record at ``path`` (written by the run), replacing it atomically.

    A missing record is left missing.
    """
    record_path = Path(path)
    if not record_path.is_file():
        return
    record = json.loads(record_path.read_text())
    record.update(sections)
    write_atomically(record_path, json.dumps(record, indent=2, default=str) + "\n")
