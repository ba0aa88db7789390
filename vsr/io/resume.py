"""Crash-safe output: video written in committed segments with a manifest, stitched at the end.

With ``--resume`` the encoder writes the video in segments of a few seconds under a
folder beside the output (``.NAME.vsr-resume/``). A segment is committed when its
file is complete and flushed to disk: then its entry (first and last pts, frame
count, sha256) is added to ``manifest.json``, which is replaced atomically. After a
crash, ``kill -9`` or a full disk, the same command finds the manifest, skips every
frame up to the last committed pts and carries on; at the end the segments and the
source's audio and subtitles are stitched into the output without re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vsr.errors import InputError, OutputError
from vsr.io.encode import EncodeSettings, Sink
from vsr.io.source import mask_url
from vsr.io.stitch import stitch
from vsr.types import VideoInfo

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1


def resume_dir(target: str) -> Path:
    """The folder beside ``target`` that holds its segments and manifest."""
    path = Path(target)
    return path.with_name(f".{path.name}.vsr-resume")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Segment:
    """One committed segment."""

    file: str
    first_pts: int
    last_pts: int
    frames: int
    sha256: str


@dataclass
class Manifest:
    """What has been committed for one job, identified by ``job`` (a hash of its settings)."""

    job: str
    source: str
    segments: list[Segment] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @property
    def last_pts(self) -> int | None:
        return self.segments[-1].last_pts if self.segments else None

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)

    def save(self, folder: Path) -> None:
        """Replace ``manifest.json`` atomically (write, fsync, rename, fsync the folder)."""
        tmp = folder / "manifest.json.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / "manifest.json")
        _fsync_dir(folder)

    @classmethod
    def load(cls, folder: Path, job: str, source: str) -> Manifest:
        """The manifest in ``folder`` for ``job``, keeping only segments whose files verify.

        Raises:
            OutputError: the folder holds a manifest of another job.
        """
        path = folder / "manifest.json"
        if not path.exists():
            return cls(job=job, source=source)
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise OutputError(f"resume manifest {path} is damaged: delete {folder} to start over") from exc
        if data.get("job") != job:
            raise OutputError(f"{folder} holds a run with other settings: delete it, or run without --resume")
        manifest = cls(job=job, source=source)
        for entry in data.get("segments", []):
            segment = Segment(**entry)
            file = folder / segment.file
            if not file.exists() or _sha256(file) != segment.sha256:
                log.warning("segment %s is missing or damaged; redoing from there", segment.file)
                break
            manifest.segments.append(segment)
        return manifest


def job_key(source: str, settings: dict) -> str:
    """A stable id for a job: the source's identity plus every setting that shapes the output."""
    identity = {"source": mask_url(source), "settings": settings}
    if os.path.isfile(source):
        st = os.stat(source)
        identity["size"] = st.st_size
        identity["mtime_ns"] = st.st_mtime_ns
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SegmentedSink:
    """A sink with :class:`~vsr.io.encode.Sink`'s interface that commits video in segments.

    Audio and subtitle packets handed to it are ignored: :meth:`close` copies them from
    the source when stitching, so their timing is exactly the source's.

    Args:
        target: final output path (a file).
        source: the input, re-read for audio/subtitles when stitching.
        info: the source video stream.
        settings: encoder settings (each segment is a separate encode with them).
        passthrough: source streams to copy into the final file.
        job: the job id (:func:`job_key`).
        segment_frames: frames per segment.
    """

    def __init__(self, target: str, source: str, info: VideoInfo, settings: EncodeSettings,
                 passthrough=(), job: str = "", segment_frames: int = 250) -> None:
        settings.validate()
        self.target = target
        self.source = source
        self.info = info
        self.settings = settings
        self.passthrough = [s.index for s in passthrough]
        self.segment_frames = max(1, segment_frames)
        self.folder = resume_dir(target)
        self.folder.mkdir(exist_ok=True)
        self.manifest = Manifest.load(self.folder, job, mask_url(source))
        self.rotation = 0
        self.stream_map: dict[int, object] = {}
        self.dropped_streams: list[str] = []
        self.frames = 0
        self.container = None  # set to the current segment's container once open
        self._current: Sink | None = None
        self._first: Sink | None = None
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self._count = 0
        self._size: tuple[int, int] | None = None

    @property
    def resume_after(self) -> int | None:
        """pts of the last committed frame: frames up to it are already done."""
        return self.manifest.last_pts

    def set_rotation(self, degrees: int) -> None:
        """Rotation to write on the stitched output."""
        self.rotation = degrees

    def open(self, width: int, height: int) -> tuple[int, int]:
        self._size = (width, height)
        self._start_segment()
        self._first = self._current
        return self._current.size

    def picture(self, rgb):
        """:meth:`Sink.picture`; every segment has the first one's size and format."""
        return self._first.picture(rgb)

    def _segment_path(self) -> Path:
        return self.folder / f"seg-{len(self.manifest.segments):05d}.mp4"

    def _start_segment(self) -> None:
        settings = EncodeSettings(**{**asdict(self.settings), "format": "mp4"})
        self._current = Sink(str(self._segment_path()), self.info, settings, passthrough=())
        self._current.open(*self._size)
        self.container = self._current.container
        self._first_pts, self._count = None, 0

    def write_frame(self, rgb, pts: int | None, duration: int | None = None) -> None:
        if self._current is None:
            self.open(rgb.shape[1], rgb.shape[0])
        self._current.write_frame(rgb, pts, duration)
        self._first_pts = pts if self._first_pts is None else self._first_pts
        self._last_pts = pts
        self._count += 1
        self.frames += 1
        if self._count >= self.segment_frames:
            self._commit()
            self._start_segment()

    def write_packet(self, packet) -> None:
        """Audio and subtitles are taken from the source at the end; nothing to do now."""

    def _commit(self) -> None:
        if self._current is None or self._count == 0:
            return
        path = self._segment_path()
        self._current.close()
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        self.manifest.segments.append(Segment(file=path.name, first_pts=self._first_pts, last_pts=self._last_pts,
                                              frames=self._count, sha256=_sha256(path)))
        self.manifest.save(self.folder)
        self._current = None

    def close(self) -> None:
        """Commit the last segment and stitch every segment with the source's audio into the output."""
        if self._current is not None and self._count:
            self._commit()
        elif self._current is not None:
            self._current.abort()
            self._current = None
        segments = [self.folder / s.file for s in self.manifest.segments]
        try:
            stitch(segments, self.source, self.target, self.passthrough, rotation=self.rotation)
        except InputError as exc:  # the source went away before its audio was copied
            raise InputError(f"{exc}; the upscaled video is kept in {self.folder}: put the input back, "
                             "unchanged, and run the same command to finish") from exc
        self.container = None

    def finish(self) -> None:
        """After a complete run: the segments are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def abort(self) -> None:
        """Drop the segment in progress; committed segments stay for the next run."""
        if self._current is not None:
            self._current.abort()
            self._current = None
        self.container = None
