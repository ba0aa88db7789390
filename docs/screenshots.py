"""Rebuild the screenshots in docs/: a compare page and a run report, taken in headless Chromium.

The material is Vid4's ``city`` (ground truth from ../shared/data/vid4), reduced to half size
with MATLAB's bicubic (the "BI" protocol), then upscaled x2 by bicubic and by misr::

    python docs/screenshots.py            # needs chromium and playwright

It runs the ``vsr`` command as a user would and writes docs/compare.png and docs/run.png
(and keeps the pages and videos in docs/build/, which git ignores).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GT = ROOT.parent / "shared" / "data" / "vid4" / "GT" / "city"
BUILD = DOCS / "build"


def write_lossless(path: Path, pictures: list[np.ndarray], rate: int = 25) -> None:
    """RGB uint8 pictures to an FFV1 4:4:4 Matroska file, BT.709 tags."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=rate)
        stream.width, stream.height = pictures[0].shape[1], pictures[0].shape[0]
        stream.pix_fmt = "yuv444p"
        stream.time_base = Fraction(1, rate)
        stream.codec_context.colorspace = 1
        stream.codec_context.color_range = 1
        for i, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv444p", dst_colorspace="itu709", dst_color_range="MPEG")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def vsr(*args: str) -> None:
    print("vsr", *args, flush=True)
    subprocess.run([sys.executable, "-m", "vsr", *args], check=True)


def screenshot(page: Path, target: Path, height: int | None = None) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1200, "height": height or 900})
        tab.goto(page.as_uri())
        for slider in tab.locator(".slider input[type=range]").all():
            slider.fill("38")  # show a little more of the result than of the input
        toggle = tab.locator("input.evidence-toggle")
        if toggle.count() > 1:
            toggle.nth(1).check()  # the second frame with misr's evidence map over it
        tab.wait_for_timeout(300)
        tab.screenshot(path=str(target), full_page=height is None)
        browser.close()


def main() -> None:
    from vsr.quality import imresize

    BUILD.mkdir(exist_ok=True)
    gt = [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in sorted(GT.glob("*.png"))]
    write_lossless(BUILD / "city_gt.mkv", gt)
    write_lossless(BUILD / "city_lr.mkv", [imresize(p, 0.5) for p in gt])
    lr = str(BUILD / "city_lr.mkv")
    vsr("run", lr, "-o", str(BUILD / "city_bicubic.mkv"), "-m", "bicubic", "--codec", "ffv1", "-y", "-q")
    vsr("run", lr, "-o", str(BUILD / "city_misr.mkv"), "-m", "misr", "--codec", "ffv1", "-y", "-q",
        "--evidence", str(BUILD / "evidence"), "--report", str(BUILD / "run.html"))
    vsr("compare", lr, str(BUILD / "city_misr.mkv"), str(BUILD / "city_bicubic.mkv"), "--reference",
        str(BUILD / "city_gt.mkv"), "--evidence", str(BUILD / "evidence"), "--at", "0.4s,1.0s",
        "-o", str(BUILD / "compare"))
    screenshot(BUILD / "compare" / "compare.html", DOCS / "compare.png")
    screenshot(BUILD / "run.html", DOCS / "run.png")
    print("wrote", DOCS / "compare.png", DOCS / "run.png")


if __name__ == "__main__":
    main()
