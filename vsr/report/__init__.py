"""Pages that show what vsr did: ``vsr compare`` and the run report (``vsr run --report``).

- :mod:`vsr.report.frames`: frames of several videos lined up by pts, detailed regions, crops.
- :mod:`vsr.report.metrics`: per-frame PSNR, SSIM, VMAF and flicker against a reference.
- :mod:`vsr.report.plots`: the charts, drawn by matplotlib as SVG.
- :mod:`vsr.report.pages`: the jinja2 templates (package data) rendered into one HTML file.
- :mod:`vsr.report.compare`, :mod:`vsr.report.run`: the two pages.

Every image is embedded as a data URI and nothing is loaded from the network: a page is one
self-contained file that can be filed, mailed or opened offline.
"""
