"""Round-trip verification: every real clip passes; a broken output is caught and named."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from conftest import SAMPLES, SHARED, run_cli

from vsr import cli
from vsr.io.encode import Sink
from vsr.verify import RunFacts, verify

CLIPS = sorted(p.name for p in (SHARED / "clips").glob("*") if p.suffix in (".mp4", ".webm", ".mkv")) \
    if (SHARED / "clips").is_dir() else []
SAMPLE_CLIPS = sorted(p.name for p in SAMPLES.glob("*") if p.suffix in (".mp4", ".mkv"))


def _run_and_check(src: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{src.stem}.mkv"
    done = run_cli("run", str(src), "-o", str(out), "-m", "nearest", "--preset", "ultrafast", timeout=900)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "verified: " in err and "every pts kept" in err, err
    assert "bit-identical" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("name", CLIPS)
def test_every_shared_clip_verifies(name, tmp_path):
    _run_and_check(SHARED / "clips" / name, tmp_path)


@pytest.mark.parametrize("name", SAMPLE_CLIPS)
def test_every_sample_verifies(name, tmp_path):
    _run_and_check(SAMPLES / name, tmp_path)


def test_the_line_names_frames_and_streams(tmp_path):
    out = tmp_path / "out.mp4"
    done = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(out), "-m", "bicubic")
    line = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("verified")]
    assert line == ["verified: 54 frames, every pts kept, 1 audio stream bit-identical; 640x360, "
                    "colour tags and duration kept"]


def test_no_verify_skips_it(tmp_path):
    done = run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(tmp_path / "o.mp4"), "-m", "nearest",
                   "--no-verify")
    assert done.returncode == 0
    assert "verified" not in done.stderr.decode()


def test_streams_in_and_out_verify_what_can_be(tmp_path):
    src = SAMPLES / "full_range_10bit.mkv"
    piped = run_cli("run", str(src), "-o", "-", "-m", "nearest")
    assert piped.returncode == 0
    assert piped.stderr.decode().splitlines()[-1] == \
        "verified what can be: 50 frames sent, every pts kept (the output is a stream: not read back)"
    out = tmp_path / "from_stdin.mkv"
    done = run_cli("run", "-", "-o", str(out), "-m", "nearest", input=src.read_bytes())
    assert done.returncode == 0
    assert done.stderr.decode().splitlines()[-1] == \
        "verified what can be: 50 frames sent, every pts kept (the input is a stream: not read back)"


def _remux(src: Path, dst: Path, *, drop_video: int | None = None, change_audio: int | None = None) -> None:
    """Copy ``src`` packet for packet, leaving out one video packet or flipping a byte of one audio packet."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        seen = {"video": 0, "audio": 0}
        for packet in inp.demux():
            if not packet.size:
                continue
            kind = packet.stream.type
            target = streams[packet.stream_index]
            n = seen.get(kind, 0)
            seen[kind] = n + 1
            if kind == "video" and n == drop_video:
                continue
            if kind == "audio" and n == change_audio:
                payload = bytearray(bytes(packet))
                payload[len(payload) // 2] ^= 0xFF
                changed = av.Packet(bytes(payload))
                changed.pts, changed.dts, changed.duration = packet.pts, packet.dts, packet.duration
                changed.time_base = packet.time_base
                changed.is_keyframe = packet.is_keyframe
                packet = changed
            packet.stream = target
            out.mux(packet)


@pytest.fixture(scope="module")
def upscaled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("up") / "vfr_x2.mp4"
    import vsr

    vsr.upscale(str(SAMPLES / "vfr_audio.mp4"), str(out), method="nearest", scale=2)
    return out


def test_the_good_output_passes(upscaled):
    result = verify(str(SAMPLES / "vfr_audio.mp4"), str(upscaled))
    assert result.ok, result.problems
    assert result.checks["frames"] == {"input": 54, "output": 54, "skipped": 0, "written": None}


def test_a_changed_audio_packet_is_caught(upscaled, tmp_path):
    broken = tmp_path / "audio.mp4"
    _remux(upscaled, broken, change_audio=20)
    result = verify(str(SAMPLES / "vfr_audio.mp4"), str(broken))
    assert not result.ok
    assert result.problems == ["audio stream 1 (aac): packet 21 of 142 (at 0.405 s) has other bytes in the output"]


def test_a_dropped_frame_is_caught(upscaled, tmp_path):
    broken = tmp_path / "frame.mp4"
    _remux(upscaled, broken, drop_video=30)
    result = verify(str(SAMPLES / "vfr_audio.mp4"), str(broken))
    assert not result.ok
    assert len(result.problems) == 1
    assert result.problems[0].startswith("1 frame of the input missing from the output: 53 frames, "
                                         "the input has 54 (missing at ")


def test_a_frame_the_run_reported_skipping_is_allowed(upscaled, tmp_path):
    broken = tmp_path / "frame.mp4"
    _remux(upscaled, broken, drop_video=30)
    result = verify(str(SAMPLES / "vfr_audio.mp4"), str(broken), facts=RunFacts(frames_skipped=1))
    assert result.ok, result.problems
    assert result.summary.startswith("verified: 53 of 54 frames (1 skipped as the run reported)")


def test_the_wrong_size_is_caught(upscaled):
    result = verify(str(SAMPLES / "vfr_audio.mp4"), str(upscaled), facts=RunFacts(expected_size=(960, 540)))
    assert result.problems == ["the output is 640x360, the run asked for 960x540"]


def test_the_cli_exits_non_zero_and_keeps_the_output(monkeypatch, tmp_path, capsys):
    """A sink that loses one frame: the run's own check catches it, says what differs, exits 6."""
    real_write = Sink.write_frame
    calls = []

    def lossy(self, rgb, pts, duration=None):
        calls.append(pts)
        if len(calls) == 10:
            self.frames += 1  # the encoder believes it wrote this frame
            return
        real_write(self, rgb, pts, duration)

    monkeypatch.setattr(Sink, "write_frame", lossy)
    out = tmp_path / "out.mp4"
    code = cli.main(["run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(out), "-m", "nearest", "--quiet"])
    err = capsys.readouterr().err
    assert code == 6
    assert err.count("\n") == 1, err
    assert err.startswith(f"vsr: error: {out} does not match its input: the run wrote 54 frames but the output "
                          "holds 53; 1 frame of the input missing from the output: 53 frames, the input has 54")
    assert "the output is kept for inspection" in err
    assert out.is_file()
