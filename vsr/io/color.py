"""Colour tags: reading them from a source, choosing the conversion, writing them back.

FFmpeg stores the colour matrix, range, primaries and transfer as small integers
(``AVColorSpace``, ``AVColorRange``...). swscale, left to itself, converts every
YUV frame with the BT.601 matrix and limited range, which shifts the colours of
HD (BT.709) and full-range footage. Every conversion in vsr therefore passes the
source's matrix and range explicitly, and the output is tagged with the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsr.types import ColorInfo

# AVColorSpace -> name, as FFmpeg prints it.
MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: None, 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c",
}
RANGE_NAMES = {0: None, 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709", 2: None, 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709", 2: None, 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67",
}

# AVColorSpace -> the swscale coefficient table that implements it.
_SWS_MATRIX = {1: "itu709", 4: "fcc", 5: "itu601", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


def _code(names: dict[int, str | None], name: str | None) -> int:
    for code, known in names.items():
        if known == name:
            return code
    return 2 if names is not RANGE_NAMES else 0


@dataclass(frozen=True)
class Conversion:
    """How one stream's YUV samples map to RGB: the swscale arguments.

    Attributes:
        colorspace: swscale matrix name (``"itu709"``, ``"itu601"``, ``"bt2020"``...).
        color_range: ``"MPEG"`` (limited) or ``"JPEG"`` (full).
        tags: the colour tags to write on the output, with guessed values filled in.
    """

    colorspace: str
    color_range: str
    tags: ColorInfo


def color_info_from_codec(codec_context) -> ColorInfo:
    """Read the colour tags of a PyAV video codec context (or frame) into a :class:`ColorInfo`."""
    return ColorInfo(
        matrix=MATRIX_NAMES.get(int(codec_context.colorspace)),
        range=RANGE_NAMES.get(int(codec_context.color_range)),
        primaries=PRIMARIES_NAMES.get(int(codec_context.color_primaries)),
        transfer=TRANSFER_NAMES.get(int(codec_context.color_trc)),
    )


def resolve_conversion(color: ColorInfo, height: int, pix_fmt: str) -> Conversion:
    """Choose the YUV<->RGB conversion for a stream, filling in what the stream leaves unsaid.

    Unspecified values are guessed as players do: BT.709 for HD (height >= 720), BT.601
    (``smpte170m``) below; full range for ``yuvj*`` formats, limited otherwise.

    Args:
        color: the source's tags, possibly with ``None`` fields.
        height: picture height in pixels (for the HD/SD guess).
        pix_fmt: decoded pixel format, e.g. ``"yuv420p"`` or ``"yuvj420p"``.

    Returns:
        The swscale arguments and the complete tags to write on the output.
    """
    matrix = color.matrix
    if matrix is None or matrix not in {MATRIX_NAMES[c] for c in _SWS_MATRIX}:
        matrix = "bt709" if height >= 720 else "smpte170m"
    color_range = color.range or ("pc" if pix_fmt.startswith("yuvj") else "tv")
    primaries = color.primaries or ("bt709" if matrix == "bt709" else "smpte170m" if matrix == "smpte170m" else None)
    transfer = color.transfer or ("bt709" if matrix in ("bt709", "smpte170m", "bt470bg") else None)
    sws = _SWS_MATRIX[_code(MATRIX_NAMES, matrix)]
    return Conversion(
        colorspace=sws,
        color_range="JPEG" if color_range == "pc" else "MPEG",
        tags=ColorInfo(matrix=matrix, range=color_range, primaries=primaries, transfer=transfer),
    )


def apply_tags(target, tags: ColorInfo) -> None:
    """Write ``tags`` onto a PyAV codec context or frame (fields left ``None`` stay unspecified)."""
    target.colorspace = _code(MATRIX_NAMES, tags.matrix)
    target.color_range = _code(RANGE_NAMES, tags.range)
    target.color_primaries = _code(PRIMARIES_NAMES, tags.primaries)
    target.color_trc = _code(TRANSFER_NAMES, tags.transfer)
