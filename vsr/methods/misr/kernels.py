"""CPU kernels of the fusion's inner loop, compiled by Numba.

On the CPU the back-projection is bound by passes over memory: torch's ``grid_sample`` and
its input gradient (the splat) walk every sample separately, and the robust residual between
them takes half a dozen more passes, each with its own allocation. Here one loop samples the
blurred estimate, forms the robust residual and splats it back, touching each sample once
(the reference's own samples added on their lattice); the bilateral-TV prior and the
separable correlations (the blur, its adjoint, the Gaussians) are one pass a row, and the
brightness matching's steps around its smoothing two passes. They compute what
:class:`.fuse.Bilinear`, :func:`.fuse._add_btv_gradient`, :func:`.fuse._correlate_torch` and
:func:`.photometric._match_torch` compute with torch, which stays the path on CUDA and the
reference the tests hold these to.

All arrays are C-contiguous float32 (indices int64); nothing here allocates per call beyond
a few rows. Compiled on first use and cached beside this module (``cache=True``). NumPy's
error model: a division by zero gives inf instead of raising, which is what lets the
prior's loops be vectorised (the checks Python's model adds kept them scalar, 3x slower).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bilinear_corners(px: np.ndarray, py: np.ndarray, width: int, height: int,
                     first: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> None:
    """Top-left corner and fractions of bilinear interpolation at ``(px, py)``.

    Points are clamped to the grid (``grid_sample``'s border padding; NaN goes to 0), and
    the corner is kept one pixel inside the last row and column with a fraction of 1 there,
    so the four taps ``first, first + 1, first + width, first + width + 1`` are always in
    the image. Needs ``width, height >= 2``.

    Args:
        px, py: ``(N,)`` float32 coordinates in pixels.
        first: ``(N,)`` int64, written: flat index of the top-left tap.
        fx, fy: ``(N,)`` float32, written: fractions in [0, 1].
    """
    for n in range(px.size):
        x = px[n]
        y = py[n]
        if not x > 0:
            x = np.float32(0)
        elif x > width - 1:
            x = np.float32(width - 1)
        if not y > 0:
            y = np.float32(0)
        elif y > height - 1:
            y = np.float32(height - 1)
        x0 = min(int(x), width - 2)
        y0 = min(int(y), height - 2)
        fx[n] = x - np.float32(x0)
        fy[n] = y - np.float32(y0)
        first[n] = y0 * width + x0


@numba.njit(inline="always")
def _taps(fx: np.ndarray, fy: np.ndarray, n: int) -> tuple:
    """The four bilinear weights of sample ``n`` (top-left, top-right, bottom-left, bottom-right)."""
    one = np.float32(1)
    a = fx[n]
    b = fy[n]
    return (one - a) * (one - b), a * (one - b), (one - a) * b, a * b


@numba.njit(inline="always")
def _gather(f: np.ndarray, i: int, width: int, w: tuple) -> float:
    return w[0] * f[i] + w[1] * f[i + 1] + w[2] * f[i + width] + w[3] * f[i + width + 1]


@numba.njit(inline="always")
def _scatter(o: np.ndarray, i: int, width: int, w: tuple, p: float) -> None:
    o[i] += w[0] * p
    o[i + 1] += w[1] * p
    o[i + width] += w[2] * p
    o[i + width + 1] += w[3] * p


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sample(image: np.ndarray, first: np.ndarray, fx: np.ndarray, fy: np.ndarray, width: int,
           out: np.ndarray) -> None:
    """``out[c, n]`` = bilinear ``image[c]`` at sample ``n``.

    Args:
        image: ``(C, H * W)``.
        first, fx, fy: from :func:`bilinear_corners`.
        out: ``(C, N)``, written.
    """
    for c in range(image.shape[0]):
        for n in range(first.size):
            out[c, n] = _gather(image[c], first[n], width, _taps(fx, fy, n))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def splat(values: np.ndarray, first: np.ndarray, fx: np.ndarray, fy: np.ndarray, width: int,
          out: np.ndarray) -> None:
    """Add the transpose of :func:`sample` applied to ``values`` into ``out``.

    Args:
        values: ``(C, N)``.
        first, fx, fy: from :func:`bilinear_corners`.
        out: ``(C, H * W)``, accumulated into.
    """
    for c in range(values.shape[0]):
        for n in range(first.size):
            _scatter(out[c], first[n], width, _taps(fx, fy, n), values[c, n])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def robust_splat(image: np.ndarray, first: np.ndarray, fx: np.ndarray, fy: np.ndarray, width: int,
                 values: np.ndarray, weight: np.ndarray, inv_scale2: float, quant: float,
                 lattice_first: int, lattice_step: int, lattice_values: np.ndarray, lattice_weight: np.ndarray,
                 out: np.ndarray) -> None:
    """Add ``splat(weight * psi(sample(image) - values))`` into ``out`` in one pass, then the
    residual of the reference's samples on their lattice.

    ``psi(r) = r / (1 + r^2 inv_scale2)`` (the Lorentzian's influence), applied after the
    dead zone ``r -> sign(r) max(|r| - quant, 0)`` when ``quant > 0``. The reference's
    sample ``(i, j)`` sits on pixel ``(lattice_first + lattice_step i, lattice_first +
    lattice_step j)``; its residual, after the same dead zone, is weighted and added there
    (quadratic: no ``psi``).

    Args:
        image: ``(C, H * W)``.
        first, fx, fy: from :func:`bilinear_corners`.
        values: ``(C, N)`` observed samples.
        weight: ``(1, N)``, or ``(C, N)`` for a weight per plane.
        lattice_values: ``(C, h, w)`` the reference's samples; ``(C, 0, 0)`` for none.
        lattice_weight: ``(1, h, w)`` or ``(C, h, w)``.
        out: ``(C, H * W)``, accumulated into.
    """
    one = np.float32(1)
    inv = np.float32(inv_scale2)
    q = np.float32(quant)
    for c in range(image.shape[0]):
        f = image[c]
        o = out[c]
        g = weight[min(c, weight.shape[0] - 1)]
        for n in range(first.size):
            i = first[n]
            w = _taps(fx, fy, n)
            r = _dead_zone(_gather(f, i, width, w) - values[c, n], q)
            _scatter(o, i, width, w, r / (r * r * inv + one) * g[n])
        if lattice_values.shape[1] == 0:
            continue
        v = lattice_values[c]
        g = lattice_weight[min(c, lattice_weight.shape[0] - 1)]
        for y in range(v.shape[0]):
            row = (lattice_first + lattice_step * y) * width + lattice_first
            for x in range(v.shape[1]):
                i = row + lattice_step * x
                o[i] += _dead_zone(f[i] - v[y, x], q) * g[y, x]


@numba.njit(inline="always")
def _dead_zone(r: float, q: float) -> float:
    """``sign(r) max(|r| - q, 0)`` for ``q > 0``; ``r`` itself otherwise."""
    zero = np.float32(0)
    if q > zero:
        return r - q if r > q else (r + q if r < -q else zero)
    return r


@numba.njit(cache=True, nogil=True, error_model="numpy")
def btv_gradient(x: np.ndarray, grad: np.ndarray, dys: np.ndarray, dxs: np.ndarray, gains: np.ndarray,
                 epsilon: float) -> None:
    """Add the bilateral-TV gradient of ``x`` into ``grad`` (see :func:`.fuse._add_btv_gradient`).

    For each shift ``(dy, dx)`` with ``gain`` (weight x alpha power) and each pair of pixels
    ``p``, ``p + (dy, dx)`` inside the image: ``g = gain * phi(x[p] - x[p + (dy, dx)])`` is added
    at ``p`` and subtracted at ``p + (dy, dx)``, with ``phi(d) = d / sqrt(d^2 + epsilon^2)``
    (``sign(d)`` for ``epsilon == 0``). A row at a time, so the three passes stay in cache.

    Args:
        x, grad: ``(C, H, W)``; ``grad`` accumulated into.
        dys, dxs: ``(S,)`` int64 shifts, ``dy >= 0``.
        gains: ``(S,)`` float32.
    """
    _, h, w = x.shape
    e2 = np.float32(epsilon * epsilon)
    row = np.empty(w, np.float32)
    for c in range(x.shape[0]):
        for s in range(dys.size):
            dy = dys[s]
            dx = dxs[s]
            gain = gains[s]
            x0 = max(0, -dx)
            x1 = min(w, w - dx)
            n = x1 - x0
            for y in range(h - dy):
                here = x[c, y, x0:x1]
                there = x[c, y + dy, x0 + dx:x1 + dx]
                if e2 > 0:
                    for j in range(n):
                        d = here[j] - there[j]
                        row[j] = gain * d / np.sqrt(d * d + e2)
                else:
                    for j in range(n):
                        row[j] = gain * np.sign(here[j] - there[j])
                g_here = grad[c, y, x0:x1]
                g_there = grad[c, y + dy, x0 + dx:x1 + dx]
                for j in range(n):
                    g_here[j] += row[j]
                for j in range(n):
                    g_there[j] -= row[j]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def brightness_residuals(planes: np.ndarray, warped: np.ndarray, pos: np.ndarray, conf: np.ndarray,
                         stack: np.ndarray, same: np.ndarray) -> None:
    """The weighted differences :func:`.photometric.match_brightness` smooths, in one pass.

    Args:
        planes: ``(K, C, h, w)`` reference first.
        warped: ``(K - 1, C, h, w)`` the reference at each neighbour's positions.
        pos: ``(K, h, w, 2)`` positions ``(x, y)`` in the reference grid.
        conf: ``(K, h, w)`` weights.
        stack: ``((K - 1) (C + 1), h, w)``, written: each neighbour's ``C`` planes of
            ``conf * (plane - warped)``, then the ``K - 1`` weights.
        same: ``(K - 1, h, w)`` bool, written: the pixel sits on its own grid point and differs
            from the warped reference by at most 1e-4 in every plane.
    """
    k_n, c_n, h, w = planes.shape
    tolerance = np.float32(1e-4)
    for k in range(k_n - 1):
        for y in range(h):
            g = conf[k + 1, y]
            stack[(k_n - 1) * c_n + k, y] = g
            at = pos[k + 1, y]
            for x in range(w):
                same[k, y, x] = at[x, 0] == x and at[x, 1] == y
            for c in range(c_n):
                d = stack[k * c_n + c, y]
                p = planes[k + 1, c, y]
                q = warped[k, c, y]
                s = same[k, y]
                for x in range(w):
                    diff = p[x] - q[x]
                    s[x] = s[x] and abs(diff) <= tolerance
                    d[x] = diff * g[x]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def brightness_apply(planes: np.ndarray, smoothed: np.ndarray, same: np.ndarray, out: np.ndarray) -> None:
    """``out``: the reference as it is, each neighbour minus its smoothed difference.

    Args:
        planes: ``(K, C, h, w)`` reference first.
        smoothed: :func:`brightness_residuals`' ``stack`` after smoothing: the difference of
            neighbour ``k`` is its plane divided by its smoothed weight plus 1e-3.
        same: from :func:`brightness_residuals`: no difference removed there.
        out: ``(K, C, h, w)``, written.
    """
    k_n, c_n, h, w = planes.shape
    floor = np.float32(1e-3)
    out[0] = planes[0]
    for k in range(k_n - 1):
        for c in range(c_n):
            for y in range(h):
                num = smoothed[k * c_n + c, y]
                den = smoothed[(k_n - 1) * c_n + k, y]
                s = same[k, y]
                p = planes[k + 1, c, y]
                o = out[k + 1, c, y]
                for x in range(w):
                    offset = num[x] / (den[x] + floor)
                    o[x] = p[x] - (np.float32(0) if s[x] else offset)


@numba.njit(inline="always")
def _source_row(y: int, h: int, symmetric: bool) -> int:
    """Row ``y`` of an ``h``-row image after its border: mirrored with the edge repeated (MATLAB's
    symmetric padding; clamped where the mirror is still outside, as :func:`.fuse._pad`), or -1
    outside for a zero border."""
    if 0 <= y < h:
        return y
    if not symmetric:
        return -1
    if y < 0:
        y = -y - 1
    if y >= h:
        y = 2 * h - 1 - y
    return min(max(y, 0), h - 1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def correlate(x: np.ndarray, taps: np.ndarray, start: int, symmetric: bool, out: np.ndarray) -> None:
    """Separable correlation ``out[y] = sum_j taps[j] x[y + start + j]`` on both axes (see
    :func:`.fuse.correlate`), a row at a time: each output row is the taps' weighted sum of
    input rows, then of shifted copies of that row, four taps to a pass, so that every pass
    is one vectorised loop over a row in cache.

    Args:
        x: ``(C, H, W)``.
        taps: ``(L,)``.
        start: offset of ``taps[0]``.
        symmetric: mirrored border with the edge repeated; otherwise zeros.
        out: ``(C, H, W)``, written.
    """
    n_c, h, w = x.shape
    n = taps.size
    groups = (n + 3) // 4
    t = np.zeros(4 * groups, np.float32)  # zero taps make up the last group
    t[:n] = taps
    before = max(0, -start)
    after = max(0, start + 4 * groups - 1)
    padded = np.zeros(before + w + after, np.float32)
    row = padded[before:before + w]
    nothing = np.zeros(w, np.float32)
    o = before + start
    for c in range(n_c):
        for y in range(h):
            for g in range(groups):
                j = 4 * g
                i0 = _source_row(y + start + j, h, symmetric)
                i1 = _source_row(y + start + j + 1, h, symmetric)
                i2 = _source_row(y + start + j + 2, h, symmetric)
                i3 = _source_row(y + start + j + 3, h, symmetric)
                r0 = x[c, i0] if i0 >= 0 else nothing
                r1 = x[c, i1] if i1 >= 0 else nothing
                r2 = x[c, i2] if i2 >= 0 else nothing
                r3 = x[c, i3] if i3 >= 0 else nothing
                _weigh4(row, r0, r1, r2, r3, t, j, g > 0)
            if symmetric:
                for i in range(before):
                    padded[before - 1 - i] = row[_source_row(-1 - i, w, True)]
                for i in range(after):
                    padded[before + w + i] = row[_source_row(w + i, w, True)]
            dst = out[c, y]
            for g in range(groups):
                j = o + 4 * g
                _weigh4(dst, padded[j:j + w], padded[j + 1:j + 1 + w], padded[j + 2:j + 2 + w],
                        padded[j + 3:j + 3 + w], t, 4 * g, g > 0)


@numba.njit(inline="always")
def _weigh4(dst: np.ndarray, r0: np.ndarray, r1: np.ndarray, r2: np.ndarray, r3: np.ndarray, t: np.ndarray,
            j: int, accumulate: bool) -> None:
    """``dst (+)= t[j] r0 + t[j + 1] r1 + t[j + 2] r2 + t[j + 3] r3``."""
    a0, a1, a2, a3 = t[j], t[j + 1], t[j + 2], t[j + 3]
    if accumulate:
        for i in range(dst.size):
            dst[i] += a0 * r0[i] + a1 * r1[i] + a2 * r2[i] + a3 * r3[i]
    else:
        for i in range(dst.size):
            dst[i] = a0 * r0[i] + a1 * r1[i] + a2 * r2[i] + a3 * r3[i]
