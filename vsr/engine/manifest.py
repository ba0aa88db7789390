"""A job's work directory: finished segments in a manifest, and a lock so one run uses it at a time.

The work directory lies beside the output (``.NAME.vsr-segments/``) and holds the segment
files and ``manifest.json``. After each finished segment the manifest is rewritten
atomically (temporary file, fsync, rename, fsync of the directory), so a crash, ``kill -9``
or a full disk never leaves a manifest naming a segment that is not on disk. The manifest
names its job by a digest of everything that shapes the output (:func:`job_key`); a
directory of another job is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vsr.digest import sha256_file, sha256_json
from vsr.engine.segments import Segment
from vsr.engine.task import SegmentResult
from vsr.errors import OutputError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
LOCK_NAME = "lock"


def work_dir(output: str | Path) -> Path:
    """The work directory beside ``output`` that holds its segment files and manifest."""
    out = Path(output)
    return out.with_name(f".{out.name}.vsr-segments")


def job_key(source: str, settings: dict[str, object]) -> str:
    """A stable id of a job: the input file (path, size, modification time) and ``settings``,
    a JSON-able description of everything that shapes the output."""
    st = os.stat(source)
    return sha256_json({"source": str(Path(source).resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "settings": settings})[:32]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Manifest:
    """Finished segments of one job.

    Attributes:
        job: the job's :func:`job_key`.
        segments: segment id to its :class:`~vsr.engine.task.SegmentResult`.
    """

    job: str
    segments: dict[int, SegmentResult] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        """Frames in the finished segments."""
        return sum(r.frames for r in self.segments.values())

    @classmethod
    def load(cls, folder: Path, job: str) -> Manifest:
        """The manifest in ``folder``, or an empty one when there is none yet.

        Raises:
            OutputError: the manifest is damaged, or belongs to another job (another input or
                other settings): the directory is left as it is.
        """
        path = folder / MANIFEST_NAME
        if not path.exists():
            return cls(job)
        damaged = f"the manifest {path} is damaged: delete {folder} to start over"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(damaged) from exc
        if not isinstance(data, dict) or data.get("job") != job:
            raise OutputError(f"{folder} holds the segments of a run with another input or other settings: "
                              "delete it to start over, or give another output")
        try:
            done = {int(k): SegmentResult(**v) for k, v in data.get("segments", {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise OutputError(damaged) from exc
        return cls(job, done)

    def save(self, folder: Path) -> None:
        """Replace ``folder``'s manifest atomically and durably (write, fsync, rename, fsync the folder)."""
        data = {"job": self.job, "segments": {str(k): asdict(v) for k, v in sorted(self.segments.items())}}
        tmp = folder / f".{MANIFEST_NAME}.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST_NAME)
        _fsync_dir(folder)

    def verified(self, segment: Segment, folder: Path) -> SegmentResult | None:
        """The recorded result of ``segment`` if it matches the plan and its file in ``folder``
        is present and unchanged; else ``None`` (the segment is made again)."""
        done = self.segments.get(segment.id)
        if done is None or (done.frames, done.first_pts, done.last_pts) != (
                segment.frames, segment.first_pts, segment.last_pts):
            return None
        path = folder / Path(done.path).name
        if not path.is_file() or sha256_file(path) != done.sha256:
            log.warning("segment %s is missing or damaged; making it again", path.name)
            return None
        return done


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """Create ``folder`` if needed and hold an exclusive lock on it while the block runs.

    The lock (``fcntl.flock`` on ``folder/lock``) is released by the kernel when the process
    ends, however it ends, so a crashed run never leaves the directory locked.

    Raises:
        OutputError: another process holds the lock (another run writes the same output).
    """
    try:
        folder.mkdir(exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+")
    except OSError as exc:
        raise OutputError(f"cannot create the work directory {folder}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise OutputError(f"{folder} is in use by another vsr run (pid {owner}) writing the same output: "
                              "wait for it to finish, or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield folder
    finally:
        handle.close()
