"""Image-quality protocol of video super-resolution papers, made reusable.

- :func:`imresize`: MATLAB-compatible bicubic resampling (antialiased when shrinking), the
  degradation behind the "BI" inputs of published tables.
- :func:`degrade_bd`: the "BD" degradation (Gaussian blur sigma 1.6, 13x13, then every
  ``scale``-th pixel).
- :func:`rgb_to_y`, :func:`psnr_y`, :func:`ssim_y`: metrics on the Y channel
  (``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on 0..255 RGB, kept as float).
- :func:`compress`: the compressed-input protocol (frames through libx264 at a crf, 4:2:0);
  :func:`encode`: the bytes those frames cost.
- Temporal metrics: :func:`tof` (TecoGAN's tOF), :func:`warping_error` (occlusion-masked,
  Lai et al. 2018), :func:`temporal_error_change`, and :func:`still_change` over a
  :func:`still_mask` (boiling where nothing moves).
- :func:`vmaf`: VMAF through an ffmpeg binary built with libvmaf.

Images are ``numpy`` arrays ``(H, W, 3)`` (or ``(H, W)``), ``uint8`` or float in 0..255
unless a function says otherwise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def resize_matrix(n_in: int, n_out: int, antialias: bool = True) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of MATLAB's ``imresize`` bicubic along one axis.

    Same contributions as MATLAB: centres ``u = x / s + 0.5 (1 - 1 / s)`` (1-based),
    kernel widened by ``1 / s`` when shrinking with antialiasing, rows normalised to
    sum 1, symmetric (edge-repeating) boundary.

    Args:
        n_in: input length (>= 1).
        n_out: output length (>= 1).
        antialias: widen the kernel when shrinking (MATLAB's default).

    Returns:
        float64 array ``(n_out, n_in)``.
    """
    scale = n_out / n_in
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric boundary: [1..n, n..1] repeated, as MATLAB's contributions().
    aux = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), idx0.ravel()), w.ravel())
    return mat


def imresize(image: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Bicubic resize, as MATLAB's ``imresize(image, scale, 'bicubic')``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array, ``uint8`` or float.
        scale: factor applied to both sides (output side ``ceil(side * scale)``), or
        size: ``(H_out, W_out)``; exactly one of ``scale`` and ``size``.
        antialias: antialiased shrinking (MATLAB default).

    Returns:
        Same dtype as ``image``: ``uint8`` input gives rounded, saturated ``uint8`` (computed
        in float64, rounded once: bit-exact with MATLAB); float input gives float64.

    Raises:
        ValueError: neither or both of ``scale`` and ``size``, or an empty output.

    >>> imresize(np.full((8, 8), 7, np.uint8), 0.5).tolist() == np.full((4, 4), 7).tolist()
    True
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    h, w = image.shape[:2]
    if size is None:
        size = (math.ceil(h * scale), math.ceil(w * scale))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"output size must be at least 1x1; got {size}")
    integer = image.dtype == np.uint8
    x = image.astype(np.float64)
    rows = resize_matrix(h, size[0], antialias)
    cols = resize_matrix(w, size[1], antialias)
    # MATLAB resizes the axis with the smaller scale first (rows first on ties).
    order = ("h", "w") if size[0] / h <= size[1] / w else ("w", "h")
    for axis in order:
        if axis == "h":
            x = np.tensordot(rows, x, axes=(1, 0))
        else:
            x = np.moveaxis(np.tensordot(cols, x, axes=(1, 1)), 0, 1)
    if integer:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x


def gaussian_kernel(size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """Normalised ``(size, size)`` Gaussian kernel (as MATLAB's ``fspecial('gaussian')``)."""
    r = (size - 1) / 2
    t = np.arange(size) - r
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def degrade_bd(image: np.ndarray, scale: int = 4, sigma: float = 1.6, size: int = 13) -> np.ndarray:
    """BD degradation: Gaussian blur (reflect-101 border), then every ``scale``-th pixel from 0.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, ``uint8`` or float.

    Returns:
        ``(ceil(H / scale), ceil(W / scale)[, C])``: ``uint8`` (rounded) for ``uint8`` input,
        else float64.
    """
    import cv2

    k = gaussian_kernel(size, sigma)
    blurred = cv2.filter2D(image.astype(np.float64), -1, k, borderType=cv2.BORDER_REFLECT_101)
    out = blurred[::scale, ::scale]
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y of BT.601 studio swing from RGB 0..255: ``(H, W, 3) -> (H, W)`` float64 in 16..235."""
    x = image.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _as_y(image: np.ndarray) -> np.ndarray:
    return rgb_to_y(image) if image.ndim == 3 else image.astype(np.float64)


def _y_pair(output: np.ndarray, reference: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 Y planes, ``crop`` pixels off each border; ValueError if shapes differ."""
    if output.shape != reference.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {reference.shape}")
    a, b = _as_y(output), _as_y(reference)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr_y(output: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """PSNR on Y in dB (peak 255).

    Args:
        output, reference: ``(H, W, 3)`` RGB (0..255) or ``(H, W)`` Y planes, same shape.
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: shapes differ.
    """
    a, b = _y_pair(output, reference, crop)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def ssim_y(output: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """SSIM on Y: 11x11 Gaussian window, sigma 1.5, over the valid region (kornia.metrics).

    Args:
        output, reference: ``(H, W, 3)`` RGB (0..255) or ``(H, W)`` Y planes, same shape.
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: shapes differ.
    """
    import kornia
    import torch

    a, b = _y_pair(output, reference, crop)
    ta = torch.from_numpy(a)[None, None]
    tb = torch.from_numpy(b)[None, None]
    # padding="valid" matches the reference implementation, which drops a 5-pixel border.
    ssim_map = kornia.metrics.ssim(ta, tb, window_size=11, max_val=255.0, padding="valid")
    return float(ssim_map.mean())


def temporal_error_change(outputs: list[np.ndarray], references: list[np.ndarray]) -> float:
    """Temporal consistency: mean absolute change between consecutive frames' Y error maps.

    Lower is steadier (0 for a constant error). Needs at least two frames; returns 0 otherwise.
    """
    errors = [_as_y(o) - _as_y(r) for o, r in zip(outputs, references, strict=True)]
    if len(errors) < 2:
        return 0.0
    return float(np.mean([np.mean(np.abs(b - a)) for a, b in itertools.pairwise(errors)]))


def _gray_u8(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 grey of an RGB frame (OpenCV's RGB2GRAY) or a Y plane as given."""
    import cv2

    if image.ndim == 2:
        return np.clip(np.round(image), 0, 255).astype(np.uint8) if image.dtype != np.uint8 else image
    return cv2.cvtColor(np.ascontiguousarray(image.astype(np.uint8)), cv2.COLOR_RGB2GRAY)


def _check_pairs(outputs: list[np.ndarray], references: list[np.ndarray]) -> None:
    """ValueError unless both lists are equally long and each frame has its reference's shape."""
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} output frames against {len(references)} reference frames")
    for o, r in zip(outputs, references):
        if o.shape != r.shape:
            raise ValueError(f"shapes differ: {o.shape} vs {r.shape}")


def _crop_tecogan(image: np.ndarray) -> np.ndarray:
    """TecoGAN's centred crop: the largest multiple of 32 per side that leaves at least 16 pixels."""
    h, w = image.shape[:2]
    ch, cw = (h // 32) * 32, (w // 32) * 32
    while ch > h - 16:
        ch -= 32
    while cw > w - 16:
        cw -= 32
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[y:y + ch, x:x + cw]


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farneback flow from grey ``a`` to grey ``b`` with TecoGAN's parameters: ``(H, W, 2)`` float32."""
    import cv2

    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def tof(outputs: list[np.ndarray], references: list[np.ndarray]) -> float:
    """tOF as TecoGAN defines it: how far the motion of the output strays from the true motion.

    For each pair of consecutive frames, Farneback flow (pyramid 0.5, 3 levels, window 15,
    3 iterations, poly_n 5, sigma 1.2) on the grey output and on the grey reference, both
    centre-cropped as TecoGAN's ``crop_8x8``; the per-pixel Euclidean norm of their difference
    is averaged. TecoGAN's tables print this value times 10.

    Args:
        outputs, references: equally long lists of ``(H, W, 3)`` RGB uint8 (0..255) or ``(H, W)``
            grey frames, all of one shape, each frame at least 17x17.

    Returns:
        Mean flow difference in pixels (0 = the output moves exactly like the reference);
        0.0 for fewer than two frames.

    Raises:
        ValueError: the lists differ in length or a frame's shape differs from its reference.
    """
    _check_pairs(outputs, references)
    out = [_gray_u8(o) for o in outputs]
    ref = [_gray_u8(r) for r in references]
    diffs = []
    for (o0, o1), (r0, r1) in zip(itertools.pairwise(out), itertools.pairwise(ref)):
        d = _crop_tecogan(_farneback(r0, r1)) - _crop_tecogan(_farneback(o0, o1))
        diffs.append(float(np.mean(np.sqrt(np.sum(d * d, axis=-1)))))
    return float(np.mean(diffs)) if diffs else 0.0


def _dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS flow (OpenCV, medium preset) from grey ``a`` to grey ``b``: ``(H, W, 2)`` float32 ``(dx, dy)``."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)


def non_occluded(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of the second frame whose motion is trustworthy (Ruder et al. 2016's checks).

    ``backward`` maps pixels of frame 2 into frame 1, ``forward`` frame 1 into frame 2. A pixel
    of frame 2 is occluded when the round trip misses (``|b + f(p + b)|^2 > 0.01 (|b|^2 +
    |f(p + b)|^2) + 0.5``), when it lies on a motion boundary (``|grad b|^2 > 0.01 |b|^2 +
    0.002``) or when it comes from outside frame 1.

    Args:
        forward, backward: ``(H, W, 2)`` float32 flows ``(dx, dy)`` in pixels.

    Returns:
        ``(H, W)`` bool, True where the pixel is visible in both frames.
    """
    import cv2

    h, w = backward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xs + backward[..., 0], ys + backward[..., 1]
    f_at = cv2.remap(forward, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.sum((backward + f_at) ** 2, axis=-1)
    consistent = round_trip <= 0.01 * (np.sum(backward**2, -1) + np.sum(f_at**2, -1)) + 0.5
    gy, gx = np.gradient(backward[..., 0]), np.gradient(backward[..., 1])
    grad2 = gy[0] ** 2 + gy[1] ** 2 + gx[0] ** 2 + gx[1] ** 2
    smooth = grad2 <= 0.01 * np.sum(backward**2, -1) + 0.002
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return consistent & smooth & inside


def warping_error(outputs: list[np.ndarray], references: list[np.ndarray] | None = None) -> float:
    """Occlusion-masked warping error (Lai et al. 2018): how much the output flickers along the motion.

    For each pair of consecutive frames, the motion is estimated on ``references`` (the ground
    truth, or the source video) or, without them, on ``outputs`` themselves: DIS flow both ways
    between grey frames. Output frame ``t`` is warped (bilinear) onto frame ``t+1`` and compared
    there; pixels that are occluded, on motion boundaries or come from outside the frame
    (:func:`non_occluded`) are left out.

    Args:
        outputs: ``(H, W, 3)`` RGB or ``(H, W)`` grey frames, uint8 or float in 0..255.
        references: frames of the same shape whose motion is trusted, or None.

    Returns:
        Mean over pairs of the mean squared difference per non-occluded pixel and channel, on a
        0..1 scale (Lai et al.'s E_warp; lower is steadier); 0.0 for fewer than two frames.

    Raises:
        ValueError: the lists differ in length or in frame shape.
    """
    import cv2

    motion = outputs if references is None else references
    _check_pairs(outputs, motion)
    grey = [_gray_u8(m) for m in motion]
    errors = []
    for t in range(len(outputs) - 1):
        forward, backward = _dis_flow(grey[t], grey[t + 1]), _dis_flow(grey[t + 1], grey[t])
        mask = non_occluded(forward, backward)
        h, w = mask.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        prev = outputs[t].astype(np.float32) / 255.0
        warped = cv2.remap(prev, xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        diff2 = (outputs[t + 1].astype(np.float32) / 255.0 - warped) ** 2
        if diff2.ndim == 3:
            diff2 = diff2.mean(axis=-1)
        errors.append(float(diff2[mask].mean()) if mask.any() else float(diff2.mean()))
    return float(np.mean(errors)) if errors else 0.0


def still_change(frames: list[np.ndarray], mask: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of Y (0..255) inside ``mask``: boiling where nothing moves.

    Args:
        frames: ``(H, W, 3)`` RGB or ``(H, W)`` Y frames of one shape.
        mask: ``(H, W)`` bool, the region to watch (for instance from :func:`still_mask`).

    Returns:
        The mean of ``|Y[t+1] - Y[t]|`` over the region and all consecutive pairs; 0.0 for fewer
        than two frames or an empty region.
    """
    if len(frames) < 2 or not mask.any():
        return 0.0
    ys = [_as_y(f) for f in frames]
    return float(np.mean([np.mean(np.abs(b - a)[mask]) for a, b in itertools.pairwise(ys)]))


def still_mask(frames: list[np.ndarray], threshold: float = 1.0, margin: int = 2) -> np.ndarray:
    """Pixels that never change by more than ``threshold`` (Y, 0..255) over ``frames``.

    Args:
        frames: ``(H, W, 3)`` RGB or ``(H, W)`` Y frames of one shape (at least two).
        threshold: largest frame-to-frame change of a still pixel.
        margin: the region is eroded by this many pixels, so that edges of moving things,
            which a method may smear into the still part, do not count as still.

    Returns:
        ``(H, W)`` bool.
    """
    import cv2

    ys = np.stack([_as_y(f) for f in frames])
    still = (np.abs(np.diff(ys, axis=0)).max(axis=0) <= threshold).astype(np.uint8)
    if margin:
        still = cv2.erode(still, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return still.astype(bool)


def _ffmpeg(ffmpeg: str | None) -> str:
    """The ffmpeg binary: ``ffmpeg`` if given, else :func:`vsr.io.transport.find_ffmpeg`'s."""
    from vsr.io.transport import find_ffmpeg

    found = ffmpeg or find_ffmpeg()
    if not found:
        raise RuntimeError("VMAF needs an ffmpeg binary with libvmaf: install imageio-ffmpeg or put ffmpeg on PATH")
    return found


def vmaf(outputs: list[np.ndarray], references: list[np.ndarray], ffmpeg: str | None = None,
         threads: int | None = None) -> float:
    """VMAF (model vmaf_v0.6.1) of ``outputs`` against ``references``, through ffmpeg's libvmaf.

    Both sequences go to ffmpeg as raw RGB, are converted to 8-bit 4:2:0 (BT.601, as VMAF's
    model was trained on) and compared frame by frame; the frames' mean is returned.

    Args:
        outputs, references: equally long, non-empty lists of ``(H, W, 3)`` uint8 RGB frames of
            one shape.
        ffmpeg: path of an ffmpeg binary built with libvmaf (default: imageio-ffmpeg's).
        threads: libvmaf threads (default: all CPUs).

    Returns:
        Mean VMAF, 0..100 (higher is better).

    Raises:
        ValueError: empty lists, different lengths or shapes, or frames that are not RGB uint8.
        RuntimeError: no ffmpeg binary, or ffmpeg failed (its last message is included).
    """
    import json
    import os
    import subprocess
    import tempfile

    if not outputs or len(outputs) != len(references):
        raise ValueError(f"VMAF needs equally long, non-empty lists; got {len(outputs)} and {len(references)}")
    shape = references[0].shape
    for f in (*outputs, *references):
        if f.shape != shape or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"VMAF needs (H, W, 3) uint8 frames of one shape; got {f.shape} {f.dtype}")
    h, w = shape[:2]
    exe = _ffmpeg(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="vsr-vmaf-") as tmp:
        paths = []
        for name, frames in (("dist.rgb", outputs), ("ref.rgb", references)):
            path = os.path.join(tmp, name)
            with open(path, "wb") as fh:
                for f in frames:
                    fh.write(np.ascontiguousarray(f).tobytes())
            paths.append(path)
        log = os.path.join(tmp, "vmaf.json")
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
        graph = (f"[0:v]format=yuv420p[d];[1:v]format=yuv420p[r];"
                 f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={threads or os.cpu_count() or 1}")
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", *raw, "-i", paths[0], *raw, "-i", paths[1],
               "-lavfi", graph, "-f", "null", "-"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"ffmpeg's libvmaf failed: {last}")
        with open(log) as fh:
            return float(json.load(fh)["pooled_metrics"]["vmaf"]["mean"])


def read_frames(path: str, count: int | None = None) -> list[np.ndarray]:
    """The first ``count`` frames (all when ``None``) of a video's first video stream, as
    ``(H, W, 3)`` uint8 RGB arrays, decoded with FFmpeg's defaults.

    Raises:
        av.error.FFmpegError: the file cannot be read.
    """
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def encode(frames: list[np.ndarray], crf: int = 23, codec: str = "libx264", rate: int = 25) -> bytes:
    """Frames encoded as a lossy 4:2:0 stream in Matroska: what they cost at a given ``crf``.

    RGB is converted to 8-bit YUV 4:2:0 (BT.601, limited range) and encoded by ``codec`` at
    ``crf`` (default preset, one thread, so the bytes are the same on every machine). Odd
    sizes are padded by repeating the last row/column.

    Args:
        frames: non-empty list of ``(H, W, 3)`` uint8 RGB frames of one shape.
        crf: constant rate factor (libx264: 0..51, 23 is its default).
        codec: an FFmpeg encoder taking ``crf`` (``libx264``, ``libx265``).
        rate: frame rate written in the stream.

    Returns:
        The Matroska file's bytes.

    Raises:
        ValueError: empty list or frames of another shape or dtype.
    """
    import io

    import av

    if not frames:
        raise ValueError("encoding needs at least one frame")
    h, w = frames[0].shape[:2]
    for f in frames:
        if f.shape != (h, w, 3) or f.dtype != np.uint8:
            raise ValueError(f"encoding needs (H, W, 3) uint8 frames of one shape; got {f.shape} {f.dtype}")
    ph, pw = h + h % 2, w + w % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(crf), "threads": "1"}
        stream.codec_context.thread_count = 1
        for f in frames:
            padded = np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
            for packet in stream.encode(vf.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def compress(frames: list[np.ndarray], crf: int = 23, codec: str = "libx264", rate: int = 25) -> list[np.ndarray]:
    """Frames after a round trip through a lossy codec in 4:2:0: the compressed-input protocol.

    Encoded by :func:`encode` (same arguments, same errors) and decoded back to RGB, cropped
    to the input size.

    Returns:
        As many ``(H, W, 3)`` uint8 RGB frames, in order.
    """
    import io

    import av

    data = encode(frames, crf, codec, rate)
    h, w = frames[0].shape[:2]
    with av.open(io.BytesIO(data), "r") as src:
        return [np.ascontiguousarray(fr.to_ndarray(format="rgb24")[:h, :w]) for fr in src.decode(video=0)]
