"""The explicit registry of upscaling methods.

Each entry names the module and factory that build the method; the module is
imported only when the method is asked for, so one broken optional dependency
never breaks the others, and ``vsr --help`` imports nothing heavy.

A new method is one file under ``vsr/methods/`` plus one line in ``_ENTRIES``.
The file holds the method's factory and its parameter dataclass (see
:mod:`vsr.methods.params`); the line names both. A factory takes ``scale`` and
keyword parameters (the dataclass's fields, as Python values) and returns a
:class:`~vsr.methods.base.Method`; it raises :class:`~vsr.errors.ConfigError`
for parameters it does not know.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vsr.errors import ConfigError

if TYPE_CHECKING:
    from vsr.methods.base import Method


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: where its factory and parameters live and what it is for."""

    name: str
    target: str  # "package.module:factory"
    summary: str
    default_scale: int = 2  # when none is asked for; 0: the model's own
    params: str = ""  # the parameter dataclass, by name in the factory's module; "": none

    def load(self):
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def params_class(self) -> type:
        """The method's parameter dataclass (:class:`~vsr.methods.params.NoParams` for none)."""
        if not self.params:
            from vsr.methods.params import NoParams

            return NoParams
        return getattr(importlib.import_module(self.target.partition(":")[0]), self.params)


_ENTRIES = (
    MethodEntry("nearest", "vsr.methods.interp:nearest", "nearest neighbour (pixel art, masks)"),
    MethodEntry("bilinear", "vsr.methods.interp:bilinear", "bilinear interpolation"),
    MethodEntry("bicubic", "vsr.methods.interp:bicubic", "bicubic interpolation (a = -0.75 on CPU, as OpenCV)"),
    MethodEntry("lanczos", "vsr.methods.interp:lanczos", "Lanczos interpolation (a = 4, 8x8 taps), the sharpest baseline"),
    MethodEntry("misr", "vsr.methods.misr.method:build", "multi-frame SR: optical-flow alignment + robust fusion",
                params="MisrParams"),
    MethodEntry("srcnn", "vsr.methods.srcnn:build", "SRCNN 9-1-5 on luma, trained here on the bundled clips (x3, x4)", 4),
    MethodEntry("span", "vsr.methods.neural:span", "SPAN x2/x4, fidelity-trained, fast (channels=48|52)",
                params="SpanParams"),
    MethodEntry("span-crf", "vsr.methods.span_crf:build",
                "SPAN fine-tuned here on compressed frames (libx264 crf 18 to 28) of the bundled clips",
                params="NeuralParams"),
    MethodEntry("misr+span", "vsr.methods.consistent:misr_span",
                "SPAN's output made consistent with the aligned neighbouring frames (misr's data term)",
                params="SpanConsistentParams"),
    MethodEntry("misr+span-crf", "vsr.methods.consistent:misr_span_crf",
                "span-crf's output made consistent with the aligned neighbouring frames",
                params="ConsistentParams"),
    MethodEntry("misr+realesrgan", "vsr.methods.consistent:misr_realesrgan",
                "Real-ESRGAN's output made consistent with the aligned neighbouring frames", 4,
                params="GanConsistentParams"),
    MethodEntry("realesrgan", "vsr.methods.neural:realesrgan", "Real-ESRGAN x4plus (RRDBNet), photos and video", 4,
                params="NeuralParams"),
    MethodEntry("realesrgan-anime", "vsr.methods.neural:realesrgan_anime", "Real-ESRGAN x4plus anime (6 blocks)", 4,
                params="NeuralParams"),
    MethodEntry("realesr-animevideo", "vsr.methods.neural:realesr_animevideo",
                "Real-ESRGAN anime-video model (animevideov3, compact) x2/x3/x4: anime and drawn video, fast; paints photos flat", 4,
                params="NeuralParams"),
    MethodEntry("realesr-video", "vsr.methods.neural:realesr_video",
                "former name of realesr-animevideo (the same anime-video model)", 4, params="NeuralParams"),
    MethodEntry("waifu2x-photo", "vsr.methods.neural:waifu2x_photo", "waifu2x upconv_7 photo x2", params="Waifu2xParams"),
    MethodEntry("model", "vsr.methods.neural:user_model", "a model file you bring (--model PATH), via spandrel", 0,
                params="NeuralParams"),
)

METHODS: dict[str, MethodEntry] = {}
for _entry in _ENTRIES:
    if _entry.name in METHODS:
        raise RuntimeError(f"method {_entry.name!r} is registered twice")
    METHODS[_entry.name] = _entry


def method_names() -> list[str]:
    """Names of every registered method, in registry order."""
    return list(METHODS)


def entry(name: str) -> MethodEntry:
    """The registry entry of ``name``.

    Raises:
        ConfigError: unknown name.
    """
    found = METHODS.get(name)
    if found is None:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return found


def default_scale(name: str) -> int:
    """The scale ``name`` upscales by when none is given: 2, the network's own 4 for the
    Real-ESRGAN family, 0 (the file's own) for user models.

    Raises:
        ConfigError: unknown name.
    """
    return entry(name).default_scale


def parse_params(name: str, values: Any = None, *, text: bool = False) -> Any:
    """``values`` (a mapping, or already the dataclass) as the parameter dataclass of ``name``.

    ``text``: string values are read as each field's type says (``--param KEY=VALUE``, flags).
    See :func:`vsr.methods.params.parse`.

    Raises:
        ConfigError: unknown method or parameter, or a bad value.
    """
    from vsr.methods.params import parse

    return parse(entry(name).params_class(), values, method=name, text=text)


def get_method(name: str, scale: int | None = None, **params: Any) -> Method:
    """Build the method registered as ``name``.

    Args:
        name: a registered name (see :func:`method_names`).
        scale: output scale factor, 1 to 8 (methods may accept fewer); ``None``: the
            method's :func:`default_scale`.
        **params: the fields of the method's parameter dataclass (:func:`parse_params`), as
            Python values.

    Raises:
        ConfigError: unknown name, unsupported scale, unknown parameter or bad value.
    """
    found = entry(name)
    return found.load()(scale=found.default_scale if scale is None else scale, **params)
