"""Frames of several videos of the same content, lined up by pts, and the crops shown of them.

Pictures here are numpy ``(H, W, 3)`` uint8 RGB arrays (10-bit sources are reduced to 8 bits
for display); regions are in fractions of the picture, so that one region names the same
content in videos of different sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vsr.errors import ConfigError, InputError

_EPSILON = 1e-6  # seconds: a pts rescaled between time bases may land a hair off


@dataclass(frozen=True)
class Picture:
    """One decoded frame.

    Attributes:
        time: presentation time in seconds.
        index: position in decode order.
        image: ``(H, W, 3)`` uint8 RGB.
        pts: the frame's pts (what misr names its evidence maps by), ``None`` when untimed.
    """

    time: float
    index: int
    image: np.ndarray
    pts: int | None = None

    @property
    def evidence_name(self) -> str:
        """The file name misr gives this frame's evidence map."""
        return f"{self.pts:012d}.png" if self.pts is not None else f"index{self.index:06d}.png"


@dataclass(frozen=True)
class Region:
    """A rectangle in fractions of the picture: ``x, y`` top-left, ``w, h`` size, all in [0, 1]."""

    x: float
    y: float
    w: float
    h: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` in pixels of a ``width x height`` picture (at least 1x1, inside it)."""
        x = min(width - 1, round(self.x * width))
        y = min(height - 1, round(self.y * height))
        w = max(1, min(width - x, round(self.w * width)))
        h = max(1, min(height - y, round(self.h * height)))
        return x, y, w, h

    @classmethod
    def parse(cls, text: str, width: int, height: int) -> Region:
        """``"x,y,w,h"`` in pixels of a ``width x height`` picture.

        Raises:
            ConfigError: not four integers, or not inside the picture.
        """
        parts = text.replace(" ", "").split(",")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"--crop takes x,y,w,h in pixels of the first video, e.g. 100,80,320,180; got {text!r}")
        x, y, w, h = (int(p) for p in parts)
        if w < 1 or h < 1 or x + w > width or y + h > height:
            raise ConfigError(f"--crop {text} is not inside the first video's {width}x{height} picture")
        return cls(x / width, y / height, w / width, h / height)


def to_uint8(data) -> np.ndarray:
    """A decoder frame's ``(3, H, W)`` uint8/uint16 tensor as an ``(H, W, 3)`` uint8 array."""
    array = data.permute(1, 2, 0).numpy()
    if array.dtype != np.uint8:
        array = (array >> 8).astype(np.uint8)
    return np.ascontiguousarray(array)


def _pictures(decoder) -> Iterator[Picture]:
    for frame in decoder.frames():
        yield Picture(time=frame.time or 0.0, index=frame.index, image=to_uint8(frame.data), pts=frame.pts)


def pictures(path: str, video_stream: int | None = None) -> Iterator[Picture]:
    """Every frame of ``path`` in presentation order, decoded with its own colour matrix.

    Raises:
        InputError: the file cannot be read.
    """
    from vsr.io.decode import Decoder

    with Decoder(path, video_stream=video_stream) as decoder:
        yield from _pictures(decoder)


_SEEK_BACK = (0.0, 1.0, 4.0, 16.0, 64.0)  # seconds: a container seeking imprecisely lands later than asked


def _seek_times(path: str, when: float, video_stream: int | None) -> list[float]:
    """Where to seek for the frame shown at ``when``: ``when`` (or the end, if it is past it)
    less each of :data:`_SEEK_BACK`, while that stays after the stream's start."""
    from vsr.io.decode import Decoder

    with Decoder(path, video_stream=video_stream) as decoder:
        info = decoder.info
    start = float((info.start_time or 0) * info.time_base)
    goal = min(when, start + info.duration) if info.duration else when
    return [goal - back for back in _SEEK_BACK if goal - back > start]


def _shown_at(path: str, when: float, video_stream: int | None, seek: float | None) -> Picture | None:
    """The last frame starting at or before ``when``, decoding from a seek to the keyframe
    before ``seek`` seconds (``None``: from the start); ``None`` when that seek landed after
    ``when``, or on frames without timestamps (whose made-up ones restart at a seek)."""
    from vsr.io.decode import Decoder

    with Decoder(path, video_stream=video_stream) as decoder:
        if seek is not None:
            decoder.container.seek(int(seek / decoder.info.time_base), stream=decoder.stream,
                                   backward=True, any_frame=False)
        previous: Picture | None = None
        for picture in _pictures(decoder):
            if seek is not None and decoder.stats.missing_pts:
                return None
            if picture.time > when + _EPSILON:
                # Before the first frame: that frame, unless a seek may have skipped earlier ones.
                return previous if seek is not None else (previous or picture)
            previous = picture
        return previous


def at_times(path: str, times: list[float], video_stream: int | None = None) -> list[Picture]:
    """The frame shown at each of ``times`` (seconds): the last one starting at or before it.

    Each time is reached by seeking to the keyframe before it and decoding from there, so a
    frame late in a long file costs about one group of pictures, not the whole file before it.
    Where a seek lands after the time (MPEG-TS seeks by bytes), it is tried again from further
    back; a time near the start, a file that cannot seek and frames without timestamps are
    found by decoding from the start. A time before the first frame gives the first frame;
    one past the end gives the last.

    Raises:
        InputError: the file cannot be read.
        ConfigError: the file has no video frame.
    """
    import av

    found: list[Picture] = []
    for when in times:
        picture = None
        for seek in (*_seek_times(path, when, video_stream), None):
            try:
                picture = _shown_at(path, when, video_stream, seek)
            except av.error.FFmpegError as exc:
                if seek is None:  # decoding from the start failed: the file, not a seek
                    raise InputError(f"{path} cannot be read at {when:g} s ({exc}); check the file") from exc
                continue
            if picture is not None:
                break
        if picture is None:
            raise ConfigError(f"{path} has no video frame to show")
        found.append(picture)
    return found


def most_detailed(image: np.ndarray, size: tuple[float, float] = (0.25, 0.25)) -> Region:
    """The region of ``size`` (fractions of width and height) with the most fine detail.

    Detail is the mean absolute Laplacian of the luma over the region: edges and texture
    score, flat areas and smooth gradients do not.
    """
    import cv2

    height, width = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3))
    w, h = max(1, round(size[0] * width)), max(1, round(size[1] * height))
    mean = cv2.boxFilter(energy, -1, (w, h), normalize=True, borderType=cv2.BORDER_CONSTANT)
    # Centres whose box lies inside the picture.
    valid = mean[h // 2 : height - (h - h // 2) + 1, w // 2 : width - (w - w // 2) + 1]
    cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return Region(cx / width, cy / height, w / width, h / height)


def crop(image: np.ndarray, region: Region) -> np.ndarray:
    """The ``region`` of ``image``: ``(h, w, 3)``."""
    x, y, w, h = region.pixels(image.shape[1], image.shape[0])
    return image[y : y + h, x : x + w]


def zoom(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``(width, height)`` with nearest-neighbour: every pixel stays a visible square."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def side_by_side(crops: list[np.ndarray], labels: list[str], gap: int = 8) -> np.ndarray:
    """Crops of equal size in a row, each under a caption bar: ``(H + bar, N W + gaps, 3)`` uint8."""
    import cv2

    h, w = crops[0].shape[:2]
    bar = 28
    canvas = np.full((h + bar, len(crops) * w + (len(crops) - 1) * gap, 3), 255, np.uint8)
    for i, (image, label) in enumerate(zip(crops, labels, strict=True)):
        x = i * (w + gap)
        canvas[bar:, x : x + w] = image
        cv2.putText(canvas, label[:60], (x + 4, bar - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 1,
                    cv2.LINE_AA)
    return canvas


def png(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB (or ``(H, W, 4)`` RGBA) encoded as PNG."""
    import cv2

    code = cv2.COLOR_RGBA2BGRA if image.ndim == 3 and image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, code))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def evidence_overlay(path: str, size: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """misr's evidence map (a 16-bit PNG, aligned observations x 1000) as an RGBA heat map.

    Args:
        path: the evidence PNG.
        size: ``(width, height)`` of the picture it lies over.

    Returns:
        ``(H, W, 4)`` uint8 RGBA (little evidence: dark and opaque; much: bright and clear)
        and the largest observation count, or ``None`` when the file is missing or unreadable.
    """
    import cv2
    from matplotlib import colormaps

    counts = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if counts is None:
        return None
    observations = counts.astype(np.float32) / 1000.0
    top = max(float(observations.max()), 1.0)
    level = observations / top
    rgba = (colormaps["magma"](level) * 255).astype(np.uint8)
    rgba[..., 3] = (255 * (1.0 - 0.6 * level)).astype(np.uint8)
    if rgba.shape[1::-1] != tuple(size):
        rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_NEAREST)
    return rgba, top
