"""The work directory's manifest: which segments are done, so that a rerun resumes.

The manifest is a small JSON file rewritten atomically (temporary file, then
``os.replace``) after each finished segment. It names the job it belongs to by a
digest of everything that changes the output; a different job starts afresh.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vsr.engine.task import SegmentResult, sha256_file

MANIFEST_NAME = "manifest.json"


@dataclass
class Manifest:
    """Finished segments of one job.

    Attributes:
        job: digest of the job's input, method and settings (:func:`job_digest`).
        segments: segment id to its :class:`SegmentResult`.
    """

    job: str
    segments: dict[int, SegmentResult] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, job: str) -> Manifest:
        """The manifest in ``folder`` if it belongs to ``job``, else an empty one (a fresh start)."""
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(job)
        if data.get("job") != job:
            return cls(job)
        try:
            done = {int(k): SegmentResult(**v) for k, v in data.get("segments", {}).items()}
        except TypeError:
            return cls(job)
        return cls(job, done)

    def save(self, folder: Path) -> None:
        """Write the manifest atomically into ``folder``."""
        data = {"job": self.job, "segments": {str(k): asdict(v) for k, v in sorted(self.segments.items())}}
        tmp = folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, folder / MANIFEST_NAME)

    def verified(self, segment_id: int, frames: int, first_pts: int, last_pts: int) -> SegmentResult | None:
        """The recorded result of a segment if its file is present, unchanged and matches the plan."""
        done = self.segments.get(segment_id)
        if done is None or (done.frames, done.first_pts, done.last_pts) != (frames, first_pts, last_pts):
            return None
        path = Path(done.path)
        if not path.is_file() or sha256_file(path) != done.sha256:
            return None
        return done


def job_digest(parts: dict[str, object]) -> str:
    """A short stable digest of a JSON-able description of the job."""
    import hashlib

    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
