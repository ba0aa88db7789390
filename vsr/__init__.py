"""vsr: video super-resolution as a streaming pipeline.

>>> import vsr
>>> vsr.upscale("in.mp4", "out.mp4", method="bicubic", scale=2)  # doctest: +SKIP
>>> with vsr.Upscaler("span", scale=4) as up:  # doctest: +SKIP
...     big = up(image)  # a numpy (H, W, 3) array or a torch tensor
"""

from vsr.errors import (
    Cancelled,
    CodecError,
    ConfigError,
    InputError,
    ModelError,
    OutputError,
    PipelineError,
    VsrError,
)

__version__ = "0.1.0"

__all__ = [
    "Cancelled", "CodecError", "ConfigError", "InputError", "ModelError", "OutputError", "PipelineError",
    "VsrError", "EncodeSettings", "Upscaler", "frames", "probe", "upscale", "__version__",
]


def __getattr__(name: str):
    # The API pulls in torch and PyAV: import it only when used, so `vsr --help` stays instant.
    if name in ("upscale", "frames"):
        from vsr import api

        return getattr(api, name)
    if name == "Upscaler":
        from vsr.upscaler import Upscaler

        return Upscaler
    if name == "EncodeSettings":
        from vsr.io.encode import EncodeSettings

        return EncodeSettings
    if name == "probe":
        from vsr.io.source import probe

        return probe
    raise AttributeError(f"module 'vsr' has no attribute {name!r}")
