"""``vsr compare``: videos of the same content side by side, frame by frame, by pts.

Writes, into one folder:

- ``compare.html``: for each chosen frame a before/after slider (the first video against each
  other one, at its own size, shown with nearest-neighbour), the crops zoomed side by side,
  misr's evidence map as an overlay when its folder is given, and with a reference the
  per-frame PSNR, SSIM, VMAF and flicker plotted over time;
- ``crops_<time>s.png``: the crops of each chosen frame side by side, one PNG per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError, OutputError
from vsr.report import frames as fr
from vsr.report.pages import data_uri, render, write_atomically

DEFAULT_FRACTIONS = (0.2, 0.5, 0.8)  # of the first video's duration, when no --at is given
_CROP_DISPLAY_HEIGHT = 300  # crops are zoomed by a whole factor to at least this many pixels high


@dataclass(frozen=True)
class Compared:
    """What :func:`compare` wrote: the page and the PNG crops, and the figures it measured."""

    page: Path
    crops: list[Path]
    metrics: dict[str, dict[str, float | None]]


def parse_times(text: str) -> list[float]:
    """``"6s,12.5s"`` or ``"6,12.5"`` or ``"1:02.5"`` to seconds.

    Raises:
        ConfigError: a value that is not a time.
    """
    times = []
    for part in text.split(","):
        item = part.strip().lower().removesuffix("s")
        try:
            if ":" in item:
                minutes, seconds = item.rsplit(":", 1)
                times.append(60 * float(minutes) + float(seconds))
            else:
                times.append(float(item))
        except ValueError:
            raise ConfigError(f"--at takes times such as 6s,12.5s or 1:02.5; got {part.strip()!r}") from None
        if times[-1] < 0:
            raise ConfigError(f"--at takes times from 0; got {part.strip()!r}")
    return times


def labels_for(paths: list[str]) -> list[str]:
    """Short names for ``paths``: file names, or whole paths where two file names are the same."""
    names = [Path(p).name for p in paths]
    return [p if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def frame_views(videos: list[str], labels: list[str], times: list[float], crop_text: str | None = None,
                evidence: str | None = None, crops_dir: Path | None = None) -> list[dict[str, Any]]:
    """What the pages show of each chosen frame: sliders, zoomed crops, evidence overlay.

    Args:
        videos: two or more files of the same content; the first is "before".
        labels: a caption for each.
        times: seconds of the frames to show.
        crop_text: ``"x,y,w,h"`` in pixels of the first video; ``None``: the most detailed
            region of the largest video, chosen per frame.
        evidence: folder of misr evidence maps of the run that made ``videos[1]``.
        crops_dir: where to write ``crops_<time>s.png`` (``None``: not written).

    Returns:
        One dict per time, for the templates.
    """
    grabbed = [fr.at_times(v, times) for v in videos]
    sizes = [(g[0].image.shape[1], g[0].image.shape[0]) for g in grabbed]
    largest = max(range(len(videos)), key=lambda i: sizes[i][0] * sizes[i][1])
    fixed = fr.Region.parse(crop_text, *sizes[0]) if crop_text else None
    views = []
    for k, when in enumerate(times):
        shots = [g[k] for g in grabbed]
        region = fixed or fr.most_detailed(shots[largest].image)
        x, y, w, h = region.pixels(*sizes[largest])
        factor = max(1, math.ceil(_CROP_DISPLAY_HEIGHT / h))
        display = (w * factor, h * factor)
        crops = [fr.zoom(fr.crop(s.image, region), display) for s in shots]
        strip = fr.side_by_side(crops, labels)
        crops_file = None
        if crops_dir is not None:
            crops_file = crops_dir / f"crops_{when:.3f}s.png"
            write_atomically(crops_file, fr.png(strip))
        sliders = []
        for j in range(1, len(videos)):
            overlay = None
            if evidence and j == 1:
                found = fr.evidence_overlay(str(Path(evidence) / shots[j].evidence_name), sizes[j])
                if found is not None:
                    from vsr.report.plots import colour_bar

                    overlay = {"uri": data_uri(fr.png(found[0]), "image/png"),
                               "scale": colour_bar(found[1], "aligned observations behind each pixel")}
            sliders.append({
                "before": data_uri(fr.png(shots[0].image), "image/png"), "before_label": labels[0],
                "after": data_uri(fr.png(shots[j].image), "image/png"), "after_label": labels[j],
                "width": sizes[j][0], "height": sizes[j][1], "overlay": overlay,
            })
        views.append({
            "time": when,
            "times": [s.time for s in shots],
            "region": {"x": x, "y": y, "w": w, "h": h, "of": labels[largest], "chosen": fixed is None},
            "zoom": factor,
            "sliders": sliders,
            "crops": [{"label": lab, "uri": data_uri(fr.png(c), "image/png")} for lab, c in zip(labels, crops, strict=True)],
            "crops_file": crops_file.name if crops_file else None,
        })
    return views


def default_times(path: str) -> list[float]:
    """Times spread over the video (a fifth, half, four fifths of its duration)."""
    from vsr.io.source import probe

    duration = probe(path).duration
    if not duration:
        return [0.0]
    return [round(duration * f, 3) for f in DEFAULT_FRACTIONS]


def compare(videos: list[str], output_dir: str | Path, at: list[float] | None = None, crop: str | None = None,
            reference: str | None = None, evidence: str | None = None, vmaf: bool = True) -> Compared:
    """Line up ``videos`` by pts and write the comparison page and crops into ``output_dir``.

    Args:
        videos: two or more files of the same content (input and outputs, any sizes).
        output_dir: folder for ``compare.html`` and the crops (created if missing).
        at: seconds of the frames to show; ``None``: :func:`default_times` of the first video.
        crop: ``"x,y,w,h"`` in pixels of the first video; ``None``: chosen per frame.
        reference: a ground-truth video: adds per-frame PSNR/SSIM/VMAF/flicker for every video
            of its size.
        evidence: folder of misr evidence maps of the run that made ``videos[1]``.
        vmaf: measure VMAF too (with ``reference``).

    Raises:
        ConfigError: fewer than two videos, or a bad ``crop``.
        InputError: a video cannot be read.
        OutputError: the folder cannot be written.
    """
    from vsr.io.source import probe

    if len(videos) < 2:
        raise ConfigError("compare needs at least two videos: the input and an output, for instance")
    infos = [probe(v) for v in videos]
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from exc
    labels = labels_for(videos)
    times = at if at else default_times(videos[0])
    views = frame_views(videos, labels, times, crop, evidence, out)
    charts, table, notes = [], [], []
    measured: dict[str, dict[str, float | None]] = {}
    if reference is not None:
        charts, table, notes, measured = _quality(videos, labels, infos, reference, vmaf)
    streams = [{"label": lab, "width": i.width, "height": i.height, "codec": i.codec, "pix_fmt": i.pix_fmt,
                "rate": float(i.average_rate) if i.average_rate else None, "frames": i.frame_count,
                "duration": i.duration} for lab, i in zip(labels, infos, strict=True)]
    page = out / "compare.html"
    write_atomically(page, render("compare.html.j2", title="vsr compare: " + " vs ".join(labels), videos=streams,
                                  views=views, charts=charts, table=table, notes=notes,
                                  reference=Path(reference).name if reference else None))
    crops = [out / v["crops_file"] for v in views if v["crops_file"]]
    return Compared(page=page, crops=crops, metrics=measured)


def _quality(videos, labels, infos, reference: str, with_vmaf: bool):
    """Per-frame metrics of every video of the reference's size, as charts and a table."""
    from vsr.io.source import probe
    from vsr.report import metrics, plots

    ref = probe(reference)
    results: dict[str, metrics.Series] = {}
    notes = []
    for video, label, info in zip(videos, labels, infos, strict=True):
        if (info.width, info.height) != (ref.width, ref.height):
            notes.append(f"{label} is {info.width}x{info.height}, the reference {ref.width}x{ref.height}: "
                         "no metrics for it")
            continue
        series = metrics.against_reference(video, reference)
        if with_vmaf:
            series.vmaf = metrics.vmaf(video, reference) or []
            if not series.vmaf:
                notes.append(f"VMAF of {label} could not be measured (no ffmpeg binary with libvmaf)")
        results[label] = series
    charts = []
    for key, name, unit in (("psnr", "PSNR (Y)", "dB"), ("ssim", "SSIM (Y)", ""), ("vmaf", "VMAF", ""),
                            ("flicker", "Flicker: change of the error between frames", "")):
        present = {lab: getattr(s, key) for lab, s in results.items() if getattr(s, key)}
        if not present:
            continue
        n = min(len(v) for v in present.values())
        times = next(iter(results.values())).times[:n]
        series = {lab: [None if v == float("inf") else v for v in vs[:n]] for lab, vs in present.items()}
        ylabel = name.split(":")[0] + (f" ({unit})" if unit else "")
        charts.append({"title": name, "svg": plots.lines(times, series, ylabel=ylabel)})
    measured = {lab: s.means() for lab, s in results.items()}
    table = [{"label": lab, **m, "frames": len(results[lab].times)} for lab, m in measured.items()]
    return charts, table, notes, measured
