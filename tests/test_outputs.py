"""What the output keeps: chroma, levels, formats, geometry, metadata and streams.

Every input here is made with the ffmpeg binary, and every output is read back with PyAV
or the ffmpeg binary, so each check is against FFmpeg's own view of the files.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import ffmpeg_exe, run_cli

import vsr
from vsr.engine.window import to_unit_float
from vsr.io.decode import Decoder
from vsr.io.encode import EncodeSettings, Sink
from vsr.methods.base import Method

# A red/blue edge at column 13 and a green band from row 9: neither falls on the 4:2:0 chroma grid.
EDGE_W, EDGE_H = 32, 16
SWS = "bicubic+full_chroma_int+full_chroma_inp+accurate_rnd"


def _edge_picture() -> np.ndarray:
    rgb = np.zeros((EDGE_H, EDGE_W, 3), np.uint8)
    rgb[:] = (200, 30, 40)
    rgb[:, 13:] = (20, 60, 220)
    rgb[9:, :] = (30, 200, 60)
    return rgb


def _ffmpeg(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], input=input, capture_output=True,
                          check=True).stdout


def _raw_rgb_input() -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{EDGE_W}x{EDGE_H}", "-r", "25", "-i", "-"]


@pytest.mark.parametrize("siting", ["left", "center", "topleft"])
def test_decoding_interpolates_chroma_at_the_stream_siting(tmp_path, siting):
    clip = tmp_path / f"edge_{siting}.mkv"
    _ffmpeg(*_raw_rgb_input(), "-sws_flags", SWS, "-vf", "scale=out_color_matrix=bt709:out_range=pc",
            "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_range", "pc",
            "-chroma_sample_location", siting, "-c:v", "libx264", "-qp", "0", str(clip),
            input=_edge_picture().tobytes())
    oracle = np.frombuffer(_ffmpeg("-i", str(clip), "-sws_flags", SWS, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
                           np.uint8).reshape(EDGE_H, EDGE_W, 3)
    with Decoder(str(clip)) as dec:
        ours = next(iter(dec)).data.permute(1, 2, 0).numpy()
    assert np.abs(ours.astype(int) - oracle).max() <= 1
    # Replicated 2x2 chroma blocks (swscale's unscaled path) miss the oracle by tens of levels.
    with av.open(str(clip)) as c:
        blocky = next(c.decode(video=0)).to_ndarray(format="rgb24", src_colorspace="itu709", src_color_range="JPEG",
                                                    dst_color_range="JPEG")
    assert np.abs(blocky.astype(int) - oracle).max() > 10


def test_encoding_filters_chroma_down_as_ffmpeg_does(tmp_path):
    oracle = np.frombuffer(_ffmpeg(*_raw_rgb_input(), "-sws_flags", SWS,
                                   "-vf", "scale=out_color_matrix=bt709:out_range=pc", "-pix_fmt", "yuv420p",
                                   "-f", "rawvideo", "-", input=_edge_picture().tobytes()), np.uint8)
    clip = tmp_path / "pc.mkv"
    _ffmpeg("-f", "lavfi", "-i", f"color=gray:s={EDGE_W}x{EDGE_H}:d=0.04", "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_range", "pc", "-c:v", "ffv1", str(clip))
    with Decoder(str(clip)) as dec:
        info = dec.info
    sink = Sink(str(tmp_path / "out.mkv"), info, EncodeSettings(codec="ffv1", pix_fmt="yuv420p"))
    sink.open(EDGE_W, EDGE_H)
    try:
        planes = sink.picture(_edge_picture()).to_ndarray().ravel()
    finally:
        sink.abort()
    luma = EDGE_W * EDGE_H
    assert np.array_equal(planes[:luma], oracle[:luma])
    assert np.abs(planes[luma:].astype(int) - oracle[luma:]).max() <= 1


def _luma(path) -> np.ndarray:
    """Y of the first frame, in code values (uint8, or uint16 for deeper formats)."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        dtype = np.uint8 if frame.format.components[0].bits <= 8 else np.uint16
        plane = np.frombuffer(frame.planes[0], dtype)
        return plane.reshape(frame.height, -1)[:, :frame.width]


# Limited range: nominal black is Y=16 and white Y=235 (64 and 940 at 10 bits); the outer
# patches of these clips sit beyond both, as a camera's super-blacks and super-whites do.
_PATCHES = {8: [4, 16, 235, 250], 10: [20, 64, 940, 1010]}


def _levels_clip(path, depth: int = 8):
    luma = np.repeat(np.array(_PATCHES[depth], np.uint16), 16)[None, :].repeat(32, axis=0)
    if depth == 8:
        yuv, pix_fmt = luma.astype(np.uint8).tobytes() + bytes([128]) * (2 * 32 * 16), "yuv420p"
    else:
        yuv, pix_fmt = luma.astype("<u2").tobytes() + np.full(2 * 32 * 16, 512, "<u2").tobytes(), "yuv420p10le"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", "64x32", "-r", "25", "-color_range", "tv",
            "-colorspace", "bt709", "-i", "-", "-c:v", "ffv1", str(path), input=yuv * 3)
    assert [int(v) for v in _luma(path)[16, [8, 24, 40, 56]]] == _PATCHES[depth]
    return path


@pytest.mark.parametrize("depth", [8, 10])
@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
@pytest.mark.parametrize("planes", [False, True], ids=["rgb", "planes"])
def test_super_whites_and_super_blacks_survive(tmp_path, depth, method, planes):
    """Through coded RGB (4:4:4 output) and, where the output keeps the source's 4:2:0, its planes."""
    clip = _levels_clip(tmp_path / "levels.mkv", depth)
    out = tmp_path / "levels_x2.mkv"
    pix_fmt = ("yuv420p" if depth == 8 else "yuv420p10le") if planes else None
    vsr.upscale(str(clip), str(out), method=method, scale=2, encode=EncodeSettings(codec="ffv1", pix_fmt=pix_fmt))
    y = _luma(out)[32, [12, 48, 80, 116]].astype(int)
    assert np.abs(y - _PATCHES[depth]).max() <= 1


class _NearestInFloat(Method):
    """A float method (as misr and the other float methods are), noting the levels it was given."""

    name = "nearest-float"
    seen: list[tuple[float, float]] = []

    def __call__(self, frames, ref):
        import torch

        frame = frames[ref]
        self.seen.append((float(frame.min()), float(frame.max())))
        return torch.repeat_interleave(torch.repeat_interleave(frame, 2, dim=-1), 2, dim=-2)


def test_float_methods_get_super_whites_beyond_one(tmp_path):
    clip = _levels_clip(tmp_path / "levels.mkv")
    out = tmp_path / "levels_x2.mkv"
    _NearestInFloat.seen = []
    vsr.upscale(str(clip), str(out), method=_NearestInFloat(), scale=2, encode=EncodeSettings(codec="ffv1"))
    low, high = _NearestInFloat.seen[0]
    assert low == pytest.approx((4 - 16) / 219, abs=1e-3) and high == pytest.approx((250 - 16) / 219, abs=1e-3)
    y = _luma(out)[32, [12, 48, 80, 116]].astype(int)
    assert np.abs(y - _PATCHES[8]).max() <= 1


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
@pytest.mark.parametrize("matrix", ["bt709", "smpte170m", "bt2020nc"])
def test_coded_levels_map_to_the_nominal_rgb_of_the_plain_decode(tmp_path, pix_fmt, matrix):
    import torch

    clip = tmp_path / "colours.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=128x96:d=0.04", "-vf", f"scale=out_color_matrix={matrix}:out_range=tv",
            "-pix_fmt", pix_fmt, "-colorspace", matrix, "-color_range", "tv", "-c:v", "ffv1", str(clip))
    with Decoder(str(clip)) as dec:
        nominal = next(iter(dec)).data
    with Decoder(str(clip)) as dec:
        levels = dec.keep_levels()
        coded = next(iter(dec)).data
    cpu = torch.device("cpu")
    ours = levels.to_nominal(to_unit_float(coded, cpu, torch.float64))
    plain = to_unit_float(nominal, cpu, torch.float64)
    inside = ((plain > 0) & (plain < 1)).all(0)  # where the plain decode did not clip
    assert inside.float().mean() > 0.1
    assert (ours - plain).abs().amax(0)[inside].max() * 255 <= 1.1  # both rounded once, on different scales
    assert (levels.to_coded(ours) - to_unit_float(coded, cpu, torch.float64)).abs().max() < 1e-9


@pytest.fixture
def av_clip(tmp_path):
    """A 2-second 64x48 H.264 clip with AAC audio and SubRip subtitles, in Matroska."""
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n")
    clip = tmp_path / "av.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
            "-i", str(srt), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
            "-c:a", "aac", "-c:s", "srt", str(clip))
    return clip


def _packet_count(path, kind: str) -> int:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return sum(1 for p in c.demux(streams) if p.size)


def test_mpegts_output_keeps_aac(av_clip, tmp_path):
    out = tmp_path / "out.ts"
    result = run_cli("run", str(av_clip), "-o", str(out), "-m", "bicubic")
    assert result.returncode == 0, result.stderr.decode()
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    # The ffmpeg binary, asked to copy the same audio into MPEG-TS, keeps the same packets.
    ref = tmp_path / "ref.ts"
    _ffmpeg("-i", str(av_clip), "-map", "0:a", "-c", "copy", "-f", "mpegts", str(ref))
    assert _packet_count(out, "audio") == _packet_count(ref, "audio") > 0
    err = result.stderr.decode()
    assert "dropped audio" not in err
    # Text subtitles would go in as opaque data: they are named as dropped instead.
    assert "dropped subtitle stream 2 (srt) cannot go into mpegts: MPEG-TS carries srt subtitles only as opaque data" in err
    assert "1 audio stream bit-identical" in err


def test_packets_copied_counts_only_streams_the_output_keeps(av_clip, tmp_path):
    out = tmp_path / "out.mp4"  # MP4 takes the AAC audio but not SubRip subtitles
    result = run_cli("run", str(av_clip), "-o", str(out), "-m", "bicubic")
    assert result.returncode == 0, result.stderr.decode()
    summary = result.stderr.decode()
    audio = _packet_count(av_clip, "audio")
    assert f"{audio} audio/subtitle packets copied" in summary
    assert "dropped subtitle stream 2 (srt) cannot go into mp4" in summary
    assert _packet_count(out, "audio") == audio


def test_m3u8_output_is_a_vod_playlist_holding_every_frame(tmp_path):
    clip = tmp_path / "long.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=32x24:r=25:d=90", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "250", str(clip))
    out = tmp_path / "hls" / "out.m3u8"
    out.parent.mkdir()
    result = run_cli("run", str(clip), "-o", str(out), "-m", "nearest", "--preset", "ultrafast",
                     "--muxer-option", "hls_time=3", timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    playlist = out.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(segments) == 30  # 90 s in 3-second segments (the muxer option), none deleted
    durations = [float(line.split(":")[1].rstrip(",")) for line in playlist.splitlines()
                 if line.startswith("#EXTINF")]
    assert all(abs(d - 3.0) < 0.05 for d in durations)
    for name in segments:  # each segment starts on a keyframe
        with av.open(str(out.parent / name)) as c:
            assert next(c.demux(video=0)).is_keyframe
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(segments + ["out.m3u8"])
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 2250


def _stream(path, index: int = 0):
    with av.open(str(path)) as c:
        s = c.streams.video[index]
        return {"pix_fmt": s.codec_context.pix_fmt, "sar": s.sample_aspect_ratio, "dar": s.display_aspect_ratio,
                "tag": s.codec_tag, "size": (s.codec_context.width, s.codec_context.height),
                "metadata": {k.lower(): v for k, v in s.metadata.items()}}


@pytest.mark.parametrize("source_fmt,codec,expected,note", [
    ("yuv422p10le", "libx264", "yuv422p10le", None),
    ("yuv422p10le", "libsvtav1", "yuv420p10le", "libsvtav1 cannot encode yuv422p10le: writing yuv420p10le (4:2:2 -> 4:2:0)"),
    ("yuv444p12le", "libx265", "yuv444p12le", None),
    ("yuv444p12le", "libx264", "yuv444p10le", "libx264 cannot encode yuv444p12le: writing yuv444p10le (12-bit -> 10-bit)"),
])
def test_chroma_format_and_depth_kept_where_the_encoder_can(tmp_path, source_fmt, codec, expected, note):
    clip = tmp_path / "src.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64:r=25:d=0.2", "-pix_fmt", source_fmt, "-c:v", "ffv1", str(clip))
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(clip), "-o", str(out), "-m", "bicubic", "--codec", codec)
    assert result.returncode == 0, result.stderr.decode()
    assert _stream(out)["pix_fmt"] == expected
    if note:
        assert note in result.stderr.decode()


def test_sample_aspect_ratio_kept(tmp_path):
    clip = tmp_path / "anamorphic.mp4"  # 54x48 pixels of 32:27 display at 4:3
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=54x48:r=25:d=0.2", "-vf", "setsar=32/27", "-c:v", "libx264",
            "-preset", "ultrafast", str(clip))
    assert _stream(clip)["dar"] == Fraction(4, 3)
    out = tmp_path / "out.mp4"
    vsr.upscale(str(clip), str(out), method="bicubic", scale=2)
    assert (_stream(out)["sar"], _stream(out)["dar"]) == (Fraction(32, 27), Fraction(4, 3))
    resized = tmp_path / "square.mp4"
    vsr.upscale(str(clip), str(resized), method="bicubic", size=(128, 96))
    assert _stream(resized)["dar"] == Fraction(4, 3)


def test_x265_in_mp4_is_tagged_hvc1(tmp_path):
    clip = tmp_path / "src.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.2", "-c:v", "libx264", "-preset", "ultrafast", str(clip))
    out = tmp_path / "out.mp4"
    vsr.upscale(str(clip), str(out), method="bicubic", scale=2, encode=EncodeSettings(codec="libx265"))
    assert _stream(out)["tag"] == "hvc1"


@pytest.fixture
def rich_mkv(tmp_path):
    """Matroska with a title, two chapters, a font attachment, two audio streams (the second default),
    ASS subtitles, a timecode and a cover picture (which FFmpeg reads as a second video stream)."""
    meta = tmp_path / "chapters.txt"
    meta.write_text(";FFMETADATA1\ntitle=A Film\ncomment=kept\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n")
    ass = tmp_path / "subs.ass"
    ass.write_text("[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
                   "Style: Default,Test Font,20\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n"
                   "Dialogue: 0,0:00:00.00,0:00:01.00,Default,hello\n")
    font = tmp_path / "TestFont.ttf"
    font.write_bytes(b"\x00\x01\x00\x00" + bytes(range(256)) * 4)
    cover = tmp_path / "cover.png"
    _ffmpeg("-f", "lavfi", "-i", "color=red:s=16x16:d=0.04", "-frames:v", "1", str(cover))
    clip = tmp_path / "rich.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
            "-f", "lavfi", "-i", "sine=f=660:d=2", "-i", str(ass), "-i", str(meta),
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s", "-map_metadata", "4", "-map_chapters", "4",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "copy",
            "-disposition:a:0", "0", "-disposition:a:1", "default", "-timecode", "01:00:00:00",
            "-attach", str(font), "-metadata:s:t", "mimetype=font/ttf",
            "-attach", str(cover), "-metadata:s:t:1", "mimetype=image/png", str(clip))
    return clip


def _container(path):
    with av.open(str(path)) as c:
        return {"metadata": {k.lower(): v for k, v in c.metadata.items()},
                "chapters": [(ch["start"] * ch["time_base"], ch["metadata"].get("title")) for ch in c.chapters()],
                "attachments": [(s.name, s.mimetype, bytes(s.data)) for s in c.streams.attachments],
                "default": [(s.type, bool(s.disposition & av.stream.Disposition.default)) for s in c.streams
                            if s.type in ("audio", "subtitle")]}


def test_matroska_keeps_title_chapters_attachments_and_default_flags(rich_mkv, tmp_path):
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(rich_mkv), "-o", str(out), "-m", "bicubic")
    assert result.returncode == 0, result.stderr.decode()
    src, got = _container(rich_mkv), _container(out)
    assert got["metadata"]["title"] == "A Film" and got["metadata"]["comment"] == "kept"
    assert got["chapters"] == src["chapters"] == [(0, "One"), (1, "Two")]
    assert got["attachments"] == src["attachments"] and [a[0] for a in got["attachments"]] == ["TestFont.ttf"]
    assert got["default"] == src["default"] == [("audio", False), ("audio", True), ("subtitle", False)]
    assert got["metadata"]["timecode"] == "01:00:00:00"
    summary = result.stderr.decode().splitlines()[0]
    notes = summary.split("; ")[2:]  # after "wrote ...: N frames" and "N packets copied"
    assert notes == ["video stream 5 (png) not copied: vsr writes one video stream (this one is a cover picture)"]


def test_what_mp4_cannot_hold_is_named(rich_mkv, tmp_path):
    out = tmp_path / "out.mp4"
    result = run_cli("run", str(rich_mkv), "-o", str(out), "-m", "bicubic")
    assert result.returncode == 0, result.stderr.decode()
    summary = result.stderr.decode()
    assert "dropped subtitle stream 3 (ssa) cannot go into mp4" in summary
    assert "attachment stream 4 (TestFont.ttf) not kept: only Matroska holds attachments" in summary
    assert "video stream 5 (png) not copied" in summary
    got = _container(out)
    assert got["metadata"]["title"] == "A Film" and [t for _, t in got["chapters"]] == ["One", "Two"]
    with av.open(str(out)) as c:  # MP4 keeps the timecode as a timecode track
        assert [s.metadata.get("timecode") for s in c.streams if s.metadata.get("handler_name") == "TimeCodeHandler"] \
            == ["01:00:00:00"]


@pytest.fixture
def hdr10_clip(tmp_path):
    clip = tmp_path / "hdr10.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64:r=25:d=0.2", "-pix_fmt", "yuv420p10le", "-c:v", "libx265",
            "-x265-params", "log-level=error:hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
                            "WP(15635,16450)L(10000000,1):max-cll=1000,400:colorprim=bt2020:transfer=smpte2084:"
                            "colormatrix=bt2020nc", str(clip))
    return clip


def _hdr(path):
    from vsr.io.color import HdrMetadata

    with av.open(str(path)) as c:
        return HdrMetadata.from_frame(next(c.decode(video=0)))


@pytest.mark.parametrize("codec", ["libx265", "libsvtav1"])
def test_hdr10_metadata_is_copied(hdr10_clip, tmp_path, codec):
    source = _hdr(hdr10_clip)
    assert source.luminance == (Fraction(1, 10000), 1000) and (source.max_cll, source.max_fall) == (1000, 400)
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(hdr10_clip), "-o", str(out), "-m", "bicubic", "--codec", codec)
    assert result.returncode == 0, result.stderr.decode()
    got = _hdr(out)
    assert (got.max_cll, got.max_fall) == (1000, 400)
    # AV1 stores the minimum luminance in units of 1/16384 cd/m² (HEVC: 1/10000).
    assert all(abs(a - b) <= Fraction(1, 16384) for a, b in zip(got.luminance, source.luminance))
    for a, b in zip([*got.primaries, got.white_point], [*source.primaries, source.white_point]):
        assert abs(a[0] - b[0]) <= Fraction(1, 50000) and abs(a[1] - b[1]) <= Fraction(1, 50000)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.pix_fmt, int(cc.color_primaries), int(cc.color_trc)) == ("yuv420p10le", 9, 16)  # bt2020, PQ


def test_hdr10_metadata_an_encoder_cannot_carry_is_named(hdr10_clip, tmp_path):
    out = tmp_path / "out.mkv"
    result = run_cli("run", str(hdr10_clip), "-o", str(out), "-m", "bicubic", "--codec", "libx264")
    assert result.returncode == 0, result.stderr.decode()
    assert "HDR10 mastering-display and light-level metadata not kept: libx264 cannot write them" in \
        result.stderr.decode()


def test_m3u8_output_with_live_is_a_rolling_playlist(tmp_path):
    clip = tmp_path / "long.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=32x24:r=25:d=20", "-c:v", "libx264", "-preset", "ultrafast", str(clip))
    out = tmp_path / "hls" / "live.m3u8"
    out.parent.mkdir()
    vsr.upscale(str(clip), str(out), method="nearest", scale=2, live=True, queue_size=1000,
                encode=EncodeSettings(preset="ultrafast"))
    playlist = out.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" not in playlist
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(segments) == 6 and segments[-1] == "live9.ts"  # ten 2-second segments, the last six listed
    assert len(list(out.parent.glob("*.ts"))) <= 7  # older ones deleted
