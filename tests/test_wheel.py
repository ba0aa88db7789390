"""The built wheel works installed, away from the checkout: presets and the model manifest travel with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, framemd5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built from a copy (the build leaves nothing in the checkout) with the
    setuptools of the test environment (the test extra asks for it)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "vsr", source / "vsr", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(source)], check=True, capture_output=True)
    return next(dist.glob("vsr-*.whl"))


def test_wheel_holds_presets_and_manifest(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "vsr/models/manifest.toml" in names
    presets = {Path(n).stem for n in names if n.startswith("vsr/pipelines/") and n.endswith(".toml")}
    assert {"live", "old-film", "surveillance"} <= presets


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding only the wheel; this interpreter's packages serve as its
    dependencies (a path line, which runs no editable-install hook), so the vsr that runs is the wheel's."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
                   check=True, capture_output=True)
    return env


def _vsr(env: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([env / "bin" / "python", "-m", "vsr", *args], cwd=cwd, capture_output=True, text=True,
                          env={**clean, "VSR_WEIGHTS_DIR": str(cwd / "weights")}, timeout=600)


def test_installed_wheel_lists_models_and_runs_a_preset(installed, tmp_path):
    located = subprocess.run([installed / "bin" / "python", "-c", "import vsr; print(vsr.__file__)"], cwd=tmp_path,
                             capture_output=True, text=True, check=True,
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout.strip()
    assert Path(located).is_relative_to(installed), located
    models = _vsr(installed, tmp_path, "models")
    assert models.returncode == 0, models.stderr
    assert "realesrgan-x4plus" in models.stdout
    out = tmp_path / "out.mp4"
    run = _vsr(installed, tmp_path, "run", str(SAMPLES / "vfr_audio.mp4"), "-o", str(out), "--pipeline", "live", "-q")
    assert run.returncode == 0, run.stderr
    assert len(framemd5(out)) == len(framemd5(SAMPLES / "vfr_audio.mp4"))
