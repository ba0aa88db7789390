"""`vsr compare` and `vsr run --report`: the files they write, and the pages in headless Chromium.

The browser tests open each page from disk, take a screenshot, drag the before/after slider
and watch every request the page makes: only the page itself may be fetched (images are
data URIs). They skip, saying why, where Chromium or playwright is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, make_clip, picture, run_cli

import vsr
from vsr.report.compare import compare, parse_times

SIZE_HR = (128, 96)
SIZE_LR = (64, 48)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A ground truth, its half-size version, and two x2 upscales of it."""
    folder = tmp_path_factory.mktemp("clips")
    hr = [picture(i, *SIZE_HR) for i in range(10)]
    lr = [cv2.resize(p, SIZE_LR, interpolation=cv2.INTER_AREA) for p in hr]
    paths = {
        "gt": make_clip(folder / "gt.mp4", frames=10, size=SIZE_HR, pictures=hr),
        "lr": make_clip(folder / "lr.mp4", frames=10, size=SIZE_LR, pictures=lr),
    }
    for method in ("nearest", "bicubic"):
        paths[method] = folder / f"{method}.mp4"
        vsr.upscale(str(paths["lr"]), str(paths[method]), method=method, scale=2)
    return paths


@pytest.fixture(scope="module")
def compared(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return compare([str(clips["lr"]), str(clips["bicubic"]), str(clips["nearest"])], out,
                   reference=str(clips["gt"]))


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A misr run with evidence maps, a report and a record."""
    folder = tmp_path_factory.mktemp("run")
    src = make_clip(folder / "in.mp4", frames=8, size=(64, 48))
    done = run_cli("run", str(src), "-o", str(folder / "out.mp4"), "-m", "misr", "--evidence", str(folder / "ev"),
                   "--report", str(folder / "run.html"), "--record", str(folder / "run.json"))
    assert done.returncode == 0, done.stderr.decode()
    return folder


def test_times_parse():
    assert parse_times("6s,12.5s") == [6.0, 12.5]
    assert parse_times("1:02.5") == [62.5]


@pytest.mark.parametrize("container", ["mp4", "ts"])
def test_frames_shown_at_times_are_found_by_seeking(tmp_path, monkeypatch, container):
    """A frame late in a long file is reached from its keyframe, and is the very frame a decode
    from the start shows at that time; times before the first frame and past the end too."""
    from vsr.report import frames as fr

    path = make_clip(tmp_path / f"long.{container}", frames=250, size=(64, 48), audio=False,
                     video_options={"g": "25", "keyint_min": "25", "sc_threshold": "0"})
    everything = list(fr.pictures(str(path)))
    first, last = everything[0].time, everything[-1].time
    times = [first - 1.0, first, 3.3, 7.02, last - 0.01, last + 5.0]
    expected = [max((p for p in everything if p.time <= t + 1e-6), key=lambda p: p.time, default=everything[0])
                for t in times]

    decoded = []
    original = fr._pictures

    def counting(decoder):
        for one in original(decoder):
            decoded.append(one.pts)
            yield one

    monkeypatch.setattr(fr, "_pictures", counting)
    shown = fr.at_times(str(path), times)
    assert [p.pts for p in shown] == [p.pts for p in expected]
    for got, want in zip(shown, expected, strict=True):
        assert np.array_equal(got.image, want.image)
    # Each time costs about one group of 25 pictures, not the file before it.
    assert len(decoded) < 6 * 30, len(decoded)


def test_compare_writes_crops_and_a_page(compared):
    assert compared.page.name == "compare.html"
    assert len(compared.crops) == 3
    strip = cv2.imread(str(compared.crops[0]))
    assert strip is not None and strip.shape[1] > 3 * 100  # three zoomed crops side by side
    assert set(compared.metrics) == {"bicubic.mp4", "nearest.mp4"}  # the input is another size
    for means in compared.metrics.values():
        assert 10 < means["psnr"] < 60 and 0 < means["ssim"] <= 1 and 0 <= means["vmaf"] <= 100


def test_pages_load_nothing_from_elsewhere(compared, reported):
    for page in (compared.page, reported / "run.html"):
        html = page.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
        assert "@import" not in html and "url(http" not in html
        assert "<img" in html and 'src="data:image/png;base64,' in html


def test_run_report_and_record_hold_the_same_facts(reported):
    record = json.loads((reported / "run.json").read_text())
    assert record["verification"]["ok"] is True
    assert record["verification"]["summary"].startswith("verified: 8 frames, every pts kept")
    assert len(record["output_streams"]["sha256"]) == 64
    assert record["progress"] and "queues" in record["progress"][0]
    html = (reported / "run.html").read_text()
    facts = json.loads(re.search(r'<script type="application/json" id="facts">(.*?)</script>', html, re.S).group(1))
    assert facts["verification"] == record["verification"]
    assert facts["output"]["sha256"] == record["output_streams"]["sha256"]
    assert facts["method"]["name"] == "misr"


def test_a_report_without_verification_says_so(clips, tmp_path):
    page = tmp_path / "r.html"
    done = run_cli("run", str(clips["lr"]), "-o", str(tmp_path / "o.mp4"), "-m", "nearest", "--no-verify",
                   "--report", str(page))
    assert done.returncode == 0, done.stderr.decode()
    assert "verified" not in done.stderr.decode()
    assert "Not verified (--no-verify)." in page.read_text()


def test_compare_command(clips, tmp_path):
    done = run_cli("compare", str(clips["lr"]), str(clips["nearest"]), "--at", "0.1s,0.3s", "--crop", "8,8,24,16",
                   "--reference", str(clips["gt"]), "--no-vmaf", "-o", str(tmp_path / "cmp"))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert err.splitlines()[-1] == f"wrote {tmp_path / 'cmp' / 'compare.html'} and 2 crop images"
    assert re.match(r"nearest\.mp4: psnr \d+\.\d+, ssim 0\.\d+, flicker \d", err.splitlines()[0])
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["compare.html", "crops_0.100s.png",
                                                                    "crops_0.300s.png"]
    strip = cv2.imread(str(tmp_path / "cmp" / "crops_0.100s.png"))
    # The crop is 24x16 of the 64x48 input and 48x32 of the output, both zoomed to 480x320.
    assert strip.shape == (28 + 320, 2 * 480 + 8, 3)


def test_compare_needs_two_videos(clips):
    done = run_cli("compare", str(clips["lr"]))
    assert done.returncode == 2
    assert done.stderr.decode() == "vsr: error: compare needs at least two videos: the input and an output, for instance\n"


def test_a_crop_outside_the_picture_is_refused(clips, tmp_path):
    done = run_cli("compare", str(clips["lr"]), str(clips["bicubic"]), "--crop", "40,40,64,64", "-o", str(tmp_path))
    assert done.returncode == 2
    assert "--crop 40,40,64,64 is not inside the first video's 64x48 picture" in done.stderr.decode()


def test_the_templates_are_declared_package_data():
    import tomllib
    from fnmatch import fnmatch

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vsr.report"]
    templates = [p.relative_to(ROOT / "vsr" / "report").as_posix() for p in (ROOT / "vsr" / "report").rglob("*.j2")]
    assert templates and all(any(fnmatch(t, pattern) for pattern in declared) for t in templates)


def test_the_templates_ship_in_the_wheel(tmp_path):
    setuptools = pytest.importorskip("setuptools", reason="setuptools is not installed: no wheel to build")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip(f"setuptools {setuptools.__version__} needs the wheel package to build wheels; 70.1+ does not")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("vsr-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("base.html.j2", "frames.html.j2", "compare.html.j2", "run.html.j2"):
        assert f"vsr/report/templates/{template}" in names


# -- in a real browser ------------------------------------------------------------------------

def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium not found (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, page_path: Path):
    """Open a page from disk, recording every request and refusing all but the page itself."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests, refused = [], []
    page.on("request", lambda r: requests.append(r.url))

    def guard(route):
        if route.request.url == page_path.as_uri():
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route(re.compile(r"^(?!data:).*"), guard)
    page.goto(page_path.as_uri(), wait_until="load")
    return page, requests, refused


def _difference(a: bytes, b: bytes) -> float:
    x = cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)
    y = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)
    return float(np.abs(x - y).mean())


def _screenshot_renders(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    shot = cv2.imread(str(path))
    assert shot is not None and shot.shape[1] == 1200 and shot.shape[0] > 900
    assert shot.std() > 10  # not a blank page


def _slider_moves(page, slider_id: str) -> None:
    slider = page.locator(f"#{slider_id}")
    slider.scroll_into_view_if_needed()
    middle = slider.screenshot()
    slider.locator("input[type=range]").fill("5")
    left = slider.screenshot()
    slider.locator("input[type=range]").fill("95")
    right = slider.screenshot()
    assert _difference(middle, left) > 1 and _difference(left, right) > 1


@pytest.mark.browser
def test_compare_page_in_chromium(browser, compared, tmp_path):
    page, requests, refused = _open(browser, compared.page)
    _screenshot_renders(page, tmp_path / "compare.png")
    assert page.locator("h1").inner_text() == "Comparison"
    assert page.locator(".chart svg").count() == 4  # PSNR, SSIM, VMAF, flicker
    assert page.locator(".slider").count() == 3 * 2  # three frames, the input against each output
    _slider_moves(page, "slider-0-0")
    assert refused == [] and requests == [compared.page.as_uri()]
    page.close()


@pytest.mark.browser
def test_run_report_in_chromium(browser, reported, tmp_path):
    page, requests, refused = _open(browser, reported / "run.html")
    _screenshot_renders(page, tmp_path / "run.png")
    assert page.locator(".banner.ok").inner_text().startswith("verified: 8 frames, every pts kept")
    assert page.locator(".chart svg").count() >= 2
    _slider_moves(page, "slider-0-0")
    toggle = page.locator("input.evidence-toggle").first
    slider = page.locator("#slider-0-0")
    slider.locator("input[type=range]").fill("0")  # all "after": where the evidence map lies
    page.wait_for_timeout(50)
    plain = slider.screenshot()
    toggle.check()
    page.wait_for_timeout(400)  # the overlay fades in over 0.15 s
    assert _difference(plain, slider.screenshot()) > 1
    assert refused == [] and requests == [(reported / "run.html").as_uri()]
    page.close()
