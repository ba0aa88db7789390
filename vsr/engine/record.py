"""The JSON record of a run: what went in (with its sha256), how it was upscaled, what came out."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from vsr.digest import sha256_file
from vsr.io.source import is_url, mask_url

if TYPE_CHECKING:
    from vsr.engine.queues import RunStats
    from vsr.io.decode import Roi
    from vsr.io.encode import EncodeSettings
    from vsr.methods.base import Method
    from vsr.types import VideoInfo


def _sha256(path: str) -> str | None:
    """sha256 of a file; ``None`` for standard input/output and URLs."""
    if path == "-" or is_url(path) or not os.path.isfile(path):
        return None
    return sha256_file(path)


def write_record(path: str, source: str, output: str, method: Method, roi: Roi | None,
                 encode: EncodeSettings, stats: RunStats, info: VideoInfo) -> None:
    """Write the JSON record of a run: input (with sha256), region, method parameters, frames."""
    from vsr import __version__

    record = {
        "vsr_version": __version__,
        "input": {"source": mask_url(source), "sha256": _sha256(source), "width": info.width,
                  "height": info.height, "time_base": str(info.time_base), "codec": info.codec},
        "roi": asdict(roi) if roi else None,
        "method": method.describe(),
        "encode": asdict(encode),
        "output": {"path": mask_url(output), "sha256": _sha256(output)},
        "frames": {"decoded": stats.frames_decoded, "written": stats.frames_written,
                   "corrupt_packets_skipped": stats.corrupt_packets, "scene_cuts": stats.scene_cuts},
    }
    tmp = Path(path).with_name(f".{Path(path).name}.partial")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)
