"""The explicit registry of network architectures vsr builds (itself, or SPAN through spandrel).

Each entry says how to recognise a state dict of its architecture (from key names) and
how to read the hyper-parameters back from tensor shapes, so a converted weights file
carries no separate configuration. Order matters: the first entry whose ``detect``
accepts the keys wins, so more specific entries come first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vsr.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

StateDict = Mapping[str, "torch.Tensor"]


@dataclass(frozen=True)
class ArchEntry:
    """An architecture: its name, a key-based detector and a builder reading shapes.

    Attributes:
        name: architecture name as the manifest writes it.
        detect: true when a state dict looks like this architecture.
        build: a fresh module sized from the state dict's shapes (weights not loaded).
    """

    name: str
    detect: Callable[[StateDict], bool]
    build: Callable[[StateDict], nn.Module]


def _count(state: StateDict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for key in state if (m := regex.fullmatch(key))})


def _detect_rrdbnet(state: StateDict) -> bool:
    return "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state and "conv_up2.weight" in state


def _build_rrdbnet(state: StateDict) -> nn.Module:
    from vsr.models.arch.rrdbnet import RRDBNet

    feats, in_ch = state["conv_first.weight"].shape[:2]
    growth = state["body.0.rdb1.conv1.weight"].shape[0]
    blocks = _count(state, r"body\.(\d+)\.rdb1\.conv1\.weight")
    return RRDBNet(blocks=blocks, feats=feats, growth=growth, in_ch=in_ch,
                   out_ch=state["conv_last.weight"].shape[0])


def _detect_srvgg(state: StateDict) -> bool:
    return "body.0.weight" in state and "body.1.weight" in state and state["body.1.weight"].ndim == 1


def _build_srvgg(state: StateDict) -> nn.Module:
    from vsr.models.arch.srvgg import SRVGGNetCompact

    last = max(int(m.group(1)) for key in state if (m := re.fullmatch(r"body\.(\d+)\.weight", key)))
    feats, in_ch = state["body.0.weight"].shape[:2]
    out_ch = in_ch
    upscale = round((state[f"body.{last}.weight"].shape[0] / out_ch) ** 0.5)
    return SRVGGNetCompact(convs=(last - 2) // 2, feats=feats, upscale=upscale, in_ch=in_ch, out_ch=out_ch)


def _detect_upconv7(state: StateDict) -> bool:
    return "convs.0.weight" in state and "up.weight" in state and len(state) == 14


def _build_upconv7(state: StateDict) -> nn.Module:
    from vsr.models.arch.upconv7 import UpConv7

    return UpConv7(in_ch=state["convs.0.weight"].shape[1], out_ch=state["up.weight"].shape[1])


def _detect_span(state: StateDict) -> bool:
    from vsr.models.arch.span import detect

    return detect(state)


def _build_span(state: StateDict) -> nn.Module:
    from vsr.models.arch.span import build

    return build(state)


ARCHS: dict[str, ArchEntry] = {
    entry.name: entry
    for entry in (
        ArchEntry("span", _detect_span, _build_span),
        ArchEntry("rrdbnet", _detect_rrdbnet, _build_rrdbnet),
        ArchEntry("srvgg", _detect_srvgg, _build_srvgg),
        ArchEntry("upconv7", _detect_upconv7, _build_upconv7),
    )
}


def build(name: str) -> Callable[[StateDict], nn.Module]:
    """The builder of architecture ``name``.

    Raises:
        ModelError: unknown architecture.
    """
    if name not in ARCHS:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return ARCHS[name].build


def detect(state: StateDict) -> ArchEntry:
    """The architecture of a state dict, from its keys.

    Raises:
        ModelError: no registered architecture recognises the keys.
    """
    for entry in ARCHS.values():
        if entry.detect(state):
            return entry
    sample = ", ".join(list(state)[:4])
    raise ModelError(f"no vsr architecture matches a state dict with keys like {sample}")


def from_state_dict(state: StateDict) -> tuple[str, nn.Module]:
    """Detect the architecture of ``state``, build it and load the weights.

    Returns:
        ``(architecture name, module in eval mode with weights loaded)``.

    Raises:
        ModelError: unknown architecture or weights that do not fit it.
    """
    entry = detect(state)
    module = entry.build(state)
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit architecture {entry.name}: {str(exc).splitlines()[0]}") from exc
    return entry.name, module.eval()
