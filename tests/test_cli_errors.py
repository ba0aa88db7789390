"""The command line's own errors: one line naming the problem and what to do, the right exit code."""

from __future__ import annotations

import av
import pytest
from conftest import SAMPLES, framemd5, run_cli

USAGE, CODEC = 2, 4


def _one_line(result, code: int, *needles: str) -> str:
    err = result.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.returncode == code, err
    assert "Traceback" not in err and "usage:" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _run(tmp_path, *args: str, output: str = "out.mp4"):
    return run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(tmp_path / output), "-m", "bicubic", *args)


@pytest.mark.parametrize("args,needles", [
    (["--scale", "1.5"], ["--scale takes a whole factor", "--size"]),
    (["--scale", "0"], ["--scale takes a whole factor", "'0'"]),
    (["--size", "0x0"], ["--size takes WIDTHxHEIGHT"]),
    (["--param", "nonsense"], ["--param takes KEY=VALUE"]),
    (["--crf", "abc"], ["--crf", "see vsr run --help"]),
    (["--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
])
def test_usage_errors_are_one_line(tmp_path, args, needles):
    _one_line(_run(tmp_path, *args), USAGE, *needles)
    assert not list(tmp_path.iterdir())


def test_unknown_preset_names_the_choices(tmp_path):
    line = _one_line(_run(tmp_path, "--preset", "warp9"), USAGE, "'warp9'", "libx264", "veryslow")
    assert "x264 [error]" not in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args,needles", [
    (["--codec", "libsvtav1", "--preset", "99"], ["'99' is not a libsvtav1 preset", "-1", "13"]),
    (["--codec", "libsvtav1", "--preset", "fast"], ["'fast' is not a libsvtav1 preset"]),
    (["--codec", "libx265", "--crf", "60"], ["--crf for libx265 must be between 0 and 51"]),
    (["--crf", "60"], ["--crf for libx264 must be between 0 and 51"]),
])
def test_encoder_settings_out_of_range(tmp_path, args, needles):
    _one_line(_run(tmp_path, *args, output="out.mkv"), USAGE, *needles)
    assert not list(tmp_path.iterdir())


def test_encoder_rejecting_its_settings_is_a_codec_error(tmp_path):
    preset = tmp_path / "lossless.toml"
    preset.write_text('[method]\nname = "nearest"\n[encode]\ncodec = "ffv1"\n[encode.options]\ncontext = "7"\n')
    _one_line(_run(tmp_path, "--pipeline", str(preset), output="out.mkv"), CODEC,
              "ffv1 rejected its settings", "encoder options")
    assert [p.name for p in tmp_path.iterdir()] == ["lossless.toml"]


def _opens(codec: str) -> bool:
    with av.open("/dev/null", "w", format="null") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        try:
            stream.codec_context.open()
        except av.error.FFmpegError:
            return False
    return True


def test_hardware_encoder_without_its_device(tmp_path):
    if "h264_nvenc" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no h264_nvenc")
    if _opens("h264_nvenc"):
        pytest.skip("h264_nvenc opens here: an NVIDIA encoder is present")
    _one_line(_run(tmp_path, "--codec", "h264_nvenc"), CODEC, "h264_nvenc cannot start here", "--codec libx264")
    assert not list(tmp_path.iterdir())


def test_webm_suggests_a_codec_that_fits_and_the_suggestion_works(tmp_path):
    line = _one_line(_run(tmp_path, output="out.webm"), CODEC, "webm", "libx264", "use --codec ")
    suggested = line.split("use --codec ", 1)[1].split()[0]
    assert suggested in ("libsvtav1", "libvpx-vp9", "libaom-av1")
    assert not list(tmp_path.iterdir())
    result = _run(tmp_path, "--codec", suggested, output="out.webm")
    assert result.returncode == 0, result.stderr.decode()
    assert len(framemd5(tmp_path / "out.webm")) == len(framemd5(SAMPLES / "vfr_audio.mp4"))


def test_quiet_silences_svt_av1(tmp_path):
    result = _run(tmp_path, "--codec", "libsvtav1", "--preset", "12", "--quiet", output="out.mkv")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr.decode() == ""
    assert (tmp_path / "out.mkv").is_file()


@pytest.mark.slow
def test_quiet_silences_ray(tmp_path):
    pytest.importorskip("ray")
    result = _run(tmp_path, "--ray", "local", "--quiet", "--segment-seconds", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr.decode() == ""
    assert len(framemd5(tmp_path / "out.mp4")) == len(framemd5(SAMPLES / "vfr_audio.mp4"))


def test_unknown_container_format(tmp_path):
    _one_line(_run(tmp_path, "--format", "nonsense"), USAGE, "--format 'nonsense'", "matroska")
    assert not list(tmp_path.iterdir())
