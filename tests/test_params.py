"""Typed method parameters: validation, the flags and listings derived from them, presets, job keys."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import SAMPLES, make_clip, run_cli

from vsr.cli import build_parser, method_flags, preset_names
from vsr.errors import ConfigError
from vsr.methods.params import as_dict, describe_fields, flag_names, parse
from vsr.methods.registry import METHODS, parse_params

# The flags the command line has always had: their spelling stays.
FLAGS = {"window", "causal", "model", "tile", "fp32", "half", "outscale", "compile", "ensemble", "temporal", "evidence"}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_parameter_is_typed_documented_and_json_able(name):
    cls = METHODS[name].params_class()
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    defaults = cls()
    for info in describe_fields(cls):
        assert info.help, f"{name}: parameter {info.name} has no line under Attributes: in {cls.__name__}"
        assert info.kind in {"int", "float", "bool", "str"} or info.choices or info.kind.endswith(" | None")
    assert flag_names(cls) <= {f.name for f in dataclasses.fields(cls)}
    assert parse_params(name, as_dict(defaults)) == defaults  # the canonical dict reads back


def test_flags_are_derived_and_keep_their_spelling():
    flags = method_flags()
    assert set(flags) == FLAGS
    assert flags["window"][1] == ["misr", "misr+span", "misr+span-crf", "misr+realesrgan"]
    assert "misr+span" in flags["tile"][1] and "misr+span" in flags["temporal"][1]
    assert "misr+span" not in flags["outscale"][1]
    assert "bicubic" not in {m for _, methods in flags.values() for m in methods}
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    options = {o for action in run._actions for o in action.option_strings}
    assert {f"--{name}" for name in FLAGS} <= options


@pytest.mark.parametrize("method,values,message", [
    ("misr", {"window": "seven"}, "misr: parameter window takes a whole number; got 'seven'"),
    ("misr", {"causal": "maybe"}, "misr: parameter causal takes true or false; got 'maybe'"),
    ("misr", {"window": "4"}, "misr: window must be an odd whole number"),
    ("misr", {"windw": "5"}, "misr has no parameter windw; it takes: window, causal"),
    ("span", {"half": "fp8"}, "span: parameter half takes fp16 or bf16; got 'fp8'"),
    ("span", {"channels": "64"}, "span: parameter channels takes 48 or 52; got '64'"),
    ("waifu2x-photo", {"noise": "7"}, "noise takes one of -1, 0, 1, 2, 3; got '7'"),
    ("realesrgan", {"tile_pad": "x"}, "realesrgan: parameter tile_pad takes a whole number (or none); got 'x'"),
    ("bicubic", {"window": "5"}, "bicubic takes no parameters; got window"),
    ("misr+span", {"outscale": "3"}, "misr+span has no parameter outscale"),
])
def test_bad_text_values_are_one_line_errors_naming_parameter_and_value(method, values, message):
    with pytest.raises(ConfigError) as info:
        parse_params(method, values, text=True)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_is_read_as_the_type_says_and_python_values_strictly():
    p = parse_params("misr", {"window": "7", "causal": "yes", "still": "0", "threads": "none", "evidence": "ev"},
                     text=True)
    assert (p.window, p.causal, p.still, p.threads, p.evidence) == (7, True, 0.0, None, "ev")
    assert isinstance(p.still, float)
    assert parse_params("span", {"channels": "52", "fp32": "off"}, text=True).channels == 52
    with pytest.raises(ConfigError, match="causal takes true or false"):
        parse_params("misr", {"causal": "yes"})  # from Python, a bool is True or False
    with pytest.raises(ConfigError, match="window takes a whole number"):
        parse_params("misr", {"window": 5.0})
    assert parse_params("misr", {"fb_sigma": 1}).fb_sigma == 1.0  # an int is a number


def test_the_data_consistent_methods_keep_their_own_defaults():
    p = parse_params("misr+span")
    assert (p.iterations, p.momentum, p.btv_weight, p.channels) == (20, 0.0, 0.0, 48)
    assert parse_params("misr").iterations == 6


def test_parse_takes_its_own_dataclass_as_it_is():
    p = parse_params("misr", {"window": 3})
    assert parse(type(p), p, method="misr") is p


def test_job_key_holds_every_parameter_with_its_default(tmp_path):
    from vsr.engine.job import plan_job
    from vsr.methods.registry import get_method

    src = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    built = get_method("misr", scale=2)

    def key(params):
        return plan_job(str(src), str(tmp_path / "out.mkv"), "misr", built, scale=2, params=params).key

    assert key({}) == key({"window": 5}) == key({"window": 5, "causal": False})
    assert key({"window": 3}) != key({})


# -- the command line ---------------------------------------------------------------------------


def _run(tmp_path, *args: str):
    return run_cli("run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(tmp_path / "out.mkv"), *args)


def _one_line(result) -> str:
    err = result.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.returncode == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_flag_of_another_method_names_the_methods_that_take_it(tmp_path):
    line = _one_line(_run(tmp_path, "-m", "bicubic", "--window", "5"))
    assert "--window does not apply to bicubic; it is for: misr, misr+span, misr+span-crf, misr+realesrgan" in line
    line = _one_line(_run(tmp_path, "-m", "misr+span", "--outscale", "3"))
    assert "--outscale does not apply to misr+span" in line and "span" in line
    assert not (tmp_path / "out.mkv").exists()


def test_bad_flag_and_param_values_are_one_line_errors(tmp_path):
    assert "misr: parameter window takes a whole number; got 'many'" in _one_line(_run(tmp_path, "--window", "many"))
    assert "misr has no parameter sharpness" in _one_line(_run(tmp_path, "--param", "sharpness=2"))
    assert "misr: parameter btv_radius takes a whole number; got '1.5'" in _one_line(
        _run(tmp_path, "--param", "btv_radius=1.5"))


def test_flags_and_params_reach_the_method(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    record = tmp_path / "run.json"
    done = run_cli("run", str(clip), "-o", str(tmp_path / "out.mkv"), "--window", "3", "--causal", "--param",
                   "iterations=2", "--param", "flow_preset=fast", "--record", str(record), "-q")
    assert done.returncode == 0, done.stderr.decode()
    import json

    params = json.loads(record.read_text())["method"]["params"]
    assert (params["window"], params["causal"], params["iterations"], params["flow_preset"]) == (3, True, 2, "fast")


def test_a_preset_with_a_wrong_key_names_the_file_and_the_key(tmp_path):
    preset = tmp_path / "mine.toml"
    for body, needle in [
        ('[method]\nname = "misr"\n[method.params]\nwindw = 5\n', "misr has no parameter windw"),
        ('[method]\nname = "misr"\n[method.params]\nwindow = "wide"\n', "window takes a whole number; got 'wide'"),
        ('[method]\nname = "bicubic"\n[method.params]\nwindow = 5\n', "bicubic takes no parameters; got window"),
        ('[method]\nnmae = "misr"\n', "unknown key nmae in [method]"),
        ('[encode]\ncrf = 18\nspeed = "fast"\n', "unknown key speed in [encode]"),
        ('[encoder]\ncrf = 18\n', "unknown table [encoder]"),
    ]:
        preset.write_text(body)
        line = _one_line(_run(tmp_path, "--pipeline", str(preset)))
        assert f"pipeline preset {preset}: " in line and needle in line, line
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.parametrize("name", preset_names())
def test_shipped_presets_pass_their_own_checks(name):
    from vsr.cli import load_preset

    assert load_preset(name)["method"]["params"]


def test_methods_lists_every_method_and_one_methods_parameters():
    listing = run_cli("methods")
    assert listing.returncode == 0
    text = listing.stdout.decode()
    assert all(name in text for name in METHODS) and "vsr methods NAME" in text
    misr = run_cli("methods", "misr", env={"COLUMNS": "200"})
    assert misr.returncode == 0, misr.stderr.decode()
    lines = misr.stdout.decode().splitlines()
    row = next(line for line in lines if "window (--window)" in line)
    assert "int" in row and " 5 " in row and "frames fused per output frame" in row
    assert any("flow_preset" in line and "medium" in line for line in lines)
    assert "no parameters" in run_cli("methods", "bicubic").stdout.decode()
    unknown = run_cli("methods", "nope")
    assert unknown.returncode == 2 and "unknown method 'nope'" in unknown.stderr.decode()


def test_the_flags_come_from_the_dataclasses_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys; from vsr.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'cv2', 'av', 'spandrel') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # `vsr --help` stays instant
