"""`vsr run` end to end, on real encoders and decoders, checked by the ffmpeg binary."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import SAMPLES, ffmpeg_stream_line, framemd5, run_cli, shared

import vsr


def _video(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        return cc.width, cc.height, cc.pix_fmt, int(cc.colorspace), int(cc.color_range)


def test_bicubic_x2_keeps_every_pts_and_copies_audio_packets(tmp_path):
    src = SAMPLES / "vfr_audio.mp4"
    out = tmp_path / "out.mp4"
    stats = vsr.upscale(str(src), str(out), method="bicubic", scale=2)
    assert stats.frames_written == stats.frames_decoded > 0

    source_frames, output_frames = framemd5(src), framemd5(out)
    assert [f[0] for f in output_frames] == [f[0] for f in source_frames]  # every pts, VFR kept
    assert len({b[0] - a[0] for a, b in zip(source_frames, source_frames[1:])}) > 1  # the input is VFR
    assert framemd5(out, "a:0", copy=True) == framemd5(src, "a:0", copy=True)  # audio packets untouched
    assert _video(out)[:2] == (640, 360)


def test_all_audio_and_subtitle_streams_come_through(tmp_path):
    src = shared("clips/nasa_13013.mp4")
    out = tmp_path / "nasa.mp4"
    vsr.upscale(str(src), str(out), method="nearest", scale=2)
    with av.open(str(src)) as c:
        kinds_in = [s.type for s in c.streams if s.type != "video"]
    with av.open(str(out)) as c:
        kinds_out = [s.type for s in c.streams if s.type != "video"]
        assert len(c.streams.video) == 1
    assert kinds_out == kinds_in == ["audio", "subtitle", "audio", "subtitle"]
    for i in range(2):
        assert framemd5(out, f"a:{i}", copy=True) == framemd5(src, f"a:{i}", copy=True)
        assert framemd5(out, f"s:{i}", copy=True) == framemd5(src, f"s:{i}", copy=True)
    assert [f[0] for f in framemd5(out)] == [f[0] for f in framemd5(src, "v:0")]


def test_video_stream_option_picks_the_second_video(tmp_path):
    src = shared("clips/nasa_13013.mp4")
    out = tmp_path / "second.mkv"
    vsr.upscale(str(src), str(out), method="bilinear", scale=2, video_stream=3)
    assert _video(out)[:2] == (960, 540)
    assert len(framemd5(out)) == len(framemd5(src, "v:1"))


def test_ten_bit_full_range_stays_ten_bit_full_range(tmp_path):
    src = SAMPLES / "full_range_10bit.mkv"
    out = tmp_path / "out.mkv"
    vsr.upscale(str(src), str(out), method="lanczos", scale=2)
    width, height, pix_fmt, matrix, color_range = _video(out)
    assert (width, height, pix_fmt) == (640, 360, "yuv420p10le")
    assert (matrix, color_range) == (1, 2)  # bt709, full ("pc")
    assert "yuv420p10le(pc, bt709" in ffmpeg_stream_line(out, 0)


@pytest.mark.parametrize("matrix,color_range", [(1, 1), (6, 1), (1, 2), (5, 2)])
def test_colours_survive_the_round_trip(clip_factory, tmp_path, matrix, color_range):
    # Flat patches of known colour: after decode -> nearest x2 -> encode -> decode they must
    # come back within compression noise, with the source's tags on the output.
    flat = np.zeros((48, 64, 3), np.uint8)
    flat[:, :32] = (200, 40, 40)
    flat[:, 32:] = (30, 160, 220)
    src = clip_factory("flat.mp4", frames=4, pictures=[flat] * 4, audio=False,
                       color={"colorspace": matrix, "color_range": color_range, "color_primaries": 1,
                              "color_trc": 1})
    out = tmp_path / "flat_x2.mp4"
    vsr.upscale(str(src), str(out), method="nearest", scale=2, encode=vsr.EncodeSettings(crf=0))
    _, _, _, out_matrix, out_range = _video(out)
    assert (out_matrix, out_range) == (matrix, color_range)
    sws_matrix = {1: "itu709", 5: "itu601", 6: "smpte170m"}[matrix]
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        rgb = frame.to_ndarray(format="rgb24", src_colorspace=sws_matrix, dst_color_range="JPEG",
                               src_color_range="JPEG" if color_range == 2 else "MPEG").astype(float)
        wrong = frame.to_ndarray(
            format="rgb24", src_colorspace="itu601" if matrix == 1 else "itu709",
            src_color_range="MPEG" if color_range == 2 else "JPEG", dst_color_range="JPEG")
    # Two 8-bit YUV round trips cost a few levels; a wrong matrix or range costs 10 to 30.
    assert np.abs(rgb[20:76, 8:56] - (200, 40, 40)).max() <= 6
    assert np.abs(rgb[20:76, 72:120] - (30, 160, 220)).max() <= 6
    assert np.abs(wrong[20:76, 8:56].astype(float) - (200, 40, 40)).max() > 10


def test_rotation_metadata_is_kept(clip_factory, tmp_path):
    src = clip_factory("rot.mp4", rotation=90, audio=False)
    out = tmp_path / "rot_x2.mp4"
    vsr.upscale(str(src), str(out), method="bilinear", scale=2)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90
        assert (frame.width, frame.height) == (128, 96)


@pytest.mark.parametrize("scale,codec,pix_fmt,expected", [(2, "libx264", "yuv420p", (478, 270)),
                                                          (3, "libx264", "yuv420p", (716, 404)),
                                                          (3, "libx264", None, (717, 405)),  # 4:4:4 kept
                                                          (3, "ffv1", None, (717, 405))])
def test_odd_sizes(clip_factory, tmp_path, scale, codec, pix_fmt, expected):
    src = clip_factory("odd.mkv", size=(239, 135), codec="ffv1", pix_fmt="yuv444p", audio=False, frames=3)
    out = tmp_path / f"odd_{scale}_{codec}_{pix_fmt}.mkv"
    vsr.upscale(str(src), str(out), method="bicubic", scale=scale,
                encode=vsr.EncodeSettings(codec=codec, pix_fmt=pix_fmt))
    assert _video(out)[:2] == expected


def test_exact_size(tmp_path):
    out = tmp_path / "sized.mp4"
    vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), str(out), method="lanczos", size=(500, 300))
    assert _video(out)[:2] == (500, 300)


@pytest.mark.parametrize("codec", ["libx265", "libsvtav1", "ffv1"])
def test_other_encoders(clip_factory, tmp_path, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    src = clip_factory("c.mp4", frames=5, size=(64, 64))
    out = tmp_path / f"out_{codec}.mkv"
    vsr.upscale(str(src), str(out), method="bilinear", scale=2, encode=vsr.EncodeSettings(codec=codec))
    assert len(framemd5(out)) == 5
    # Matroska counts time in milliseconds, so compare the audio payloads, not their pts.
    payloads = [row[2:] for row in framemd5(out, "a:0", copy=True)]
    assert payloads == [row[2:] for row in framemd5(src, "a:0", copy=True)]


def test_stdin_input(tmp_path):
    ts = tmp_path / "in.ts"
    vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), str(ts), method="nearest", scale=1,
                encode=vsr.EncodeSettings(format="mpegts"))
    out = tmp_path / "from_stdin.mkv"
    result = run_cli("run", "-", "-o", str(out), "-m", "bicubic", "-q", input=ts.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert len(framemd5(out)) == len(framemd5(ts))


def test_frame_iterator_gives_pts_and_sizes():
    frames = list(vsr.frames(str(SAMPLES / "vfr_audio.mp4"), method="bilinear", scale=2))
    assert [f.pts for f in frames] == [f[0] * 512 for f in framemd5(SAMPLES / "vfr_audio.mp4")]
    assert all(tuple(f.data.shape) == (3, 360, 640) for f in frames)
    assert all(f.time_base == Fraction(1, 15360) for f in frames)
    assert 0.0 <= float(frames[0].data.min()) and float(frames[0].data.max()) <= 1.0


def test_damaged_packets_mid_file_are_skipped(tmp_path):
    ts = tmp_path / "good.ts"
    vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), str(ts), method="nearest", scale=1,
                encode=vsr.EncodeSettings(format="mpegts", preset="ultrafast"))
    data = bytearray(ts.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    for offset in rng.integers(middle - 20000, middle + 20000, 400):
        data[offset] ^= 0xFF
    bad = tmp_path / "damaged.ts"
    bad.write_bytes(bytes(data))
    # Matroska: one damaged timestamp can leap hours ahead, out of the range MP4 can store.
    out = tmp_path / "out.mkv"
    # --no-verify: the read-back check rightly says the output's length differs from the input's
    # (tests/test_verify.py covers verification).
    result = run_cli("run", str(bad), "-o", str(out), "-m", "nearest", "-s", "2", "--no-verify")
    assert result.returncode == 0, result.stderr.decode()
    assert 0 < len(framemd5(out)) <= len(framemd5(ts))


def test_overwrite_needs_the_flag(tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    result = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(out), "-m", "nearest")
    assert result.returncode != 0 and b"--overwrite" in result.stderr
    assert out.read_bytes() == b"keep me"
    result = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(out), "-m", "nearest", "--overwrite")
    assert result.returncode == 0 and out.stat().st_size > 1000


def test_probe_json_and_table():
    import json

    result = run_cli("probe", str(SAMPLES / "full_range_10bit.mkv"), "--json")
    info = json.loads(result.stdout)
    assert (info["width"], info["height"], info["bit_depth"]) == (320, 180, 10)
    assert info["color"]["range"] == "pc" and info["color"]["matrix"] == "bt709"
    assert [s["kind"] for s in info["streams"]] == ["video", "audio"]
    table = run_cli("probe", str(SAMPLES / "vfr_audio.mp4")).stdout.decode()
    assert "320x180" in table and "aac" in table


def test_audio_packets_are_remuxed_after_the_input_is_closed(clip_factory, tmp_path):
    """The decoder closes its input when it reaches the end, while audio packets may still wait
    for the encoder: routing them must not read the closed input's streams (that memory is gone)."""
    from vsr.io.decode import Decoder
    from vsr.io.encode import EncodeSettings, Sink

    src = clip_factory("c.mp4", frames=5, size=(64, 48))
    for attempt in range(5):  # freed memory is reused by chance: try a few times
        packets: list = []
        decoder = Decoder(str(src), on_packet=packets.append)
        sink = Sink(str(tmp_path / f"out{attempt}.mkv"), decoder.info, EncodeSettings(codec="ffv1"),
                    passthrough=decoder.passthrough)
        sink.open(64, 48)  # as the pipeline does: streams copied while the input is open
        frames = list(decoder.frames())
        decoder.close()
        junk = [av.open(str(src)) for _ in range(4)]  # take the freed memory back
        for packet in packets:
            sink.write_packet(packet)
        for frame in frames:
            sink.write_frame(frame.data.permute(1, 2, 0).contiguous().numpy(), frame.pts)
        sink.close()
        for container in junk:
            container.close()
        assert sink.packets == len(packets) > 0
        assert len(framemd5(tmp_path / f"out{attempt}.mkv", "a:0", copy=True)) == len(packets)
