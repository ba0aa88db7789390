"""What the output keeps: chroma, levels, formats, geometry, metadata and streams.

Every input here is made with the ffmpeg binary, and every output is read back with PyAV
or the ffmpeg binary, so each check is against FFmpeg's own view of the files.
"""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest
from conftest import ffmpeg_exe, run_cli

import vsr
from vsr.io.decode import Decoder
from vsr.io.encode import EncodeSettings, Sink

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
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return np.frombuffer(frame.planes[0], np.uint8).reshape(frame.height, frame.planes[0].line_size)[:, :frame.width]


def test_super_whites_and_super_blacks_survive(tmp_path):
    # Limited range: nominal black is Y=16 and white Y=235; these patches sit outside both.
    clip = tmp_path / "levels.mkv"
    luma = np.repeat(np.array([4, 16, 235, 250], np.uint8), 16)[None, :].repeat(32, axis=0)
    yuv = luma.tobytes() + bytes([128]) * (2 * 32 * 16)
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x32", "-r", "25", "-color_range", "tv",
            "-colorspace", "bt709", "-i", "-", "-c:v", "ffv1", str(clip), input=yuv * 3)
    assert [int(v) for v in _luma(clip)[16, [8, 24, 40, 56]]] == [4, 16, 235, 250]
    out = tmp_path / "levels_x2.mkv"
    vsr.upscale(str(clip), str(out), method="bicubic", scale=2, encode=EncodeSettings(codec="ffv1"))
    y = _luma(out)[32, [12, 48, 80, 116]].astype(int)
    assert np.abs(y - [4, 16, 235, 250]).max() <= 1


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
    assert "dropped" not in result.stderr.decode()


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
