"""The shipped presets work exactly as their own comments say to run them."""

from __future__ import annotations

import importlib.resources
import shlex

import av
import pytest
from conftest import framemd5, make_clip, run_cli

from vsr.cli import preset_names
from vsr.io.source import is_url


def _documented_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for name in preset_names():
        text = (importlib.resources.files("vsr.pipelines") / f"{name}.toml").read_text()
        for line in text.splitlines():
            command = line.lstrip("# ")
            if command.startswith("vsr run "):
                commands.append((name, shlex.split(command)[2:]))
    return commands


def test_every_preset_documents_a_command():
    assert {name for name, _ in _documented_commands()} == set(preset_names())


@pytest.mark.parametrize("name,args", _documented_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_documented_command_runs(tmp_path, name, args):
    source = args[0]
    if is_url(source):
        # The command line refuses a stream without -o: the documented command must give one.
        assert "-o" in args or "--output" in args, f"{name}: a stream input needs -o"
        source = "camera.mp4"
    make_clip(tmp_path / source, frames=8, size=(64, 48))
    result = run_cli("run", source, *args[1:], "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    outputs = [p for p in tmp_path.iterdir() if p.suffix in (".mp4", ".mkv") and p.name != source]
    assert len(outputs) == 1
    written = len(framemd5(outputs[0]))
    # --live drops frames rather than fall behind: a file decodes faster than real time.
    assert 1 <= written <= 8 if "--live" in args else written == 8
    if "--evidence" in args:
        folder = tmp_path / args[args.index("--evidence") + 1]
        with av.open(str(tmp_path / source)) as container:
            stamps = sorted(frame.pts for frame in container.decode(video=0))
        assert sorted(int(p.stem) for p in folder.glob("*.png")) == stamps
