"""``vsr probe``: rotation from the display matrix, and what vsr assumes where the stream says nothing."""

from __future__ import annotations

import json

import pytest
from conftest import make_clip, run_cli

import vsr


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_comes_from_the_display_matrix(tmp_path, degrees):
    src = make_clip(tmp_path / "turned.mp4", frames=3, rotation=degrees, audio=False)
    expected = vsr.probe(str(src)).rotation
    assert expected % 360 == degrees % 360
    data = json.loads(run_cli("probe", str(src), "--json").stdout)
    assert data["rotation"] == expected
    table = run_cli("probe", str(src)).stdout.decode()
    assert f"{expected} deg" in table


def test_untagged_colour_shows_what_is_assumed(tmp_path):
    src = make_clip(tmp_path / "plain.mp4", frames=3, audio=False)  # no colour tags, 48 lines high
    result = run_cli("probe", str(src))
    table = result.stdout.decode()
    assert result.returncode == 0 and "?" not in table
    assert "matrix smpte170m*" in table and "range tv*" in table and "untagged" in table
    data = json.loads(run_cli("probe", str(src), "--json").stdout)
    assert data["color"]["matrix"] is None
    assert data["color_assumed"] == {"matrix": "smpte170m", "range": "tv", "primaries": "smpte170m",
                                     "transfer": "bt709"}


def test_tagged_colour_is_shown_as_it_is():
    from conftest import SAMPLES

    table = run_cli("probe", str(SAMPLES / "full_range_10bit.mkv")).stdout.decode()
    assert "matrix bt709, range pc" in table and "*" not in table
