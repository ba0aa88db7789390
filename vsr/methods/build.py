"""A ready method: built from the registry (or given), on its device, with its output size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsr.errors import ConfigError
from vsr.methods.base import Method
from vsr.methods.params import as_dict
from vsr.methods.registry import get_method


def resolve_device(device: str | None) -> str:
    """``"auto"``/``None`` → ``"cuda"`` when a CUDA device is usable, else ``"cpu"``; others as given.

    Raises:
        ConfigError: a CUDA device is asked for and torch sees none.
    """
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return device


def build_method(method: str | Method, scale: int | None, params: Mapping[str, Any] | Any, device: str | None,
                 size: tuple[int, int] | None = None) -> Method:
    """A ready method: from the registry (or as given), on its device, honouring ``size`` ``(W, H)``.

    ``params``: a mapping of the method's parameters, its parameter dataclass, or ``None``.

    Raises:
        ConfigError: unknown method, scale or parameter; a device that is not there.
        ModelError: a neural method's weights cannot be loaded.
    """
    if params is not None and not isinstance(params, Mapping):
        params = as_dict(params)
    built = method if isinstance(method, Method) else get_method(method, scale=scale, **(params or {}))
    built.to(resolve_device(device))
    if size is not None:
        built.target_size = (size[1], size[0])
    return built
