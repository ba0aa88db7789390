"""SPAN (Swift Parameter-free Attention Network) through spandrel, and its ncnn conversion.

Wan et al., Swift Parameter-free Attention Network for Efficient Super-Resolution
(CVPR workshops 2024). spandrel builds the network; this module only turns the weights
of an ncnn export into spandrel's state dict.

An ncnn export keeps each re-parameterised ``Conv3XC`` block as the one 3x3 convolution
it folds into at inference (``eval_conv``). spandrel's block recomputes ``eval_conv``
from its training-time branches (a 1x1 skip, and 1x1 -> 3x3 -> 1x1 at twice the width)
on every call, so the conversion writes branches that fold back into exactly the
exported kernel: identity 1x1 convolutions around a 3x3 whose first block is the kernel,
and a zero skip. Every product in that folding is by 1 or 0, so the fold is exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from vsr.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vsr.models.ncnn import NcnnGraph

# spandrel cannot read these two from a state dict and builds every SPAN with them; an
# export that normalises its input differently would run wrong, so conversion checks them.
RGB_MEAN = (0.4488, 0.4371, 0.4040)
IMG_RANGE = 255.0
# 3x3 convolutions between an input pixel and an output pixel: conv_1, three in each of
# six blocks, conv_2 and the upsampler's.
MARGIN = 21

_FOLDED = re.compile(r"/(conv_1|conv_2|block_\d+/c\d_r)/eval_conv/Conv")
_PLAIN = re.compile(r"/(?:upsampler/)?(conv_cat|upsampler\.0)/Conv")


def detect(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a spandrel SPAN state dict (the keys spandrel itself checks)."""
    return all(key in state for key in ("conv_1.sk.weight", "block_1.c1_r.eval_conv.weight",
                                        "conv_cat.weight", "upsampler.0.weight"))


def build(state: Mapping[str, torch.Tensor]) -> nn.Module:
    """spandrel's SPAN sized from ``state`` (weights loaded), with ``scale`` and ``margin`` set.

    Shape:
        ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, sH, sW)``, nominally in [0, 1].

    Raises:
        ModelError: spandrel does not take the state dict as SPAN.
    """
    import spandrel

    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state))
    except Exception as exc:  # noqa: BLE001 - spandrel raises plain exceptions
        raise ModelError(f"spandrel does not load this SPAN state dict: {exc}") from exc
    if descriptor.architecture.id != "SPAN":
        raise ModelError(f"spandrel takes this state dict as {descriptor.architecture.name}, not SPAN")
    module = descriptor.model
    module.scale = int(descriptor.scale)
    module.margin = MARGIN
    _fold_once(module.eval())
    return module


def _fold_once(module: nn.Module) -> None:
    """Fold each ``Conv3XC``'s training-time branches into its ``eval_conv`` now, and stop it
    folding them again on every forward call (spandrel's eval mode does, which cost about 4x
    the network's own time and undid the channels-last layout of the weights)."""
    from spandrel.architectures.SPAN.__arch.span import Conv3XC

    for sub in module.modules():
        if isinstance(sub, Conv3XC):
            sub.update_params()
            sub.update_params = lambda: None


def state_from_ncnn(graph: NcnnGraph) -> dict[str, torch.Tensor]:
    """The spandrel SPAN state dict of an ncnn SPAN export.

    Args:
        graph: a SPAN graph with weights (:func:`vsr.models.ncnn.read_model`), exported from
            torch with its layer names (``/block_1/c1_r/eval_conv/Conv``...).

    Returns:
        A state dict :func:`build` loads; the network's output equals the ncnn graph's.

    Raises:
        ModelError: the graph normalises its input other than spandrel does, or a
            convolution is missing or not named as a SPAN export names it.
    """
    import torch

    _check_normalisation(graph)
    state: dict[str, torch.Tensor] = {}
    for layer in graph.of_type("Convolution"):
        if len(layer.weights) != 2:
            raise ModelError(f"SPAN convolution {layer.name} has no bias")
        weight, bias = (torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in layer.weights)
        if match := _FOLDED.fullmatch(layer.name):
            state.update(_unfold(match.group(1).replace("/", "."), weight, bias))
        elif match := _PLAIN.fullmatch(layer.name):
            key = match.group(1)
            state[f"{key}.weight"], state[f"{key}.bias"] = weight, bias
        else:
            raise ModelError(f"ncnn layer {layer.name} is not a SPAN convolution")
    if not detect(state):
        raise ModelError("the ncnn graph lacks convolutions SPAN needs")
    return state


def _check_normalisation(graph: NcnnGraph) -> None:
    constants = graph.of_type("MemoryData")
    ops = graph.of_type("BinaryOp")
    mean = constants[0].weights[0].ravel() if len(constants) == 1 else None
    # (x - mean) then x * 255: op 1 is subtraction, op 2 multiplication by the scalar 2=...
    scaled = [op for op in ops if op.param(0) == 2 and op.param(1) == 1]
    if (mean is None or not np.allclose(mean, RGB_MEAN, atol=1e-6) or len(scaled) != 1
            or abs(float(scaled[0].param(2, 0.0)) - IMG_RANGE) > 1e-6):
        raise ModelError("this SPAN export normalises its input differently from the usual "
                         f"(x - {RGB_MEAN}) * {IMG_RANGE:g}; it cannot be converted")


def _unfold(key: str, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """Training-time branches of a ``Conv3XC`` (gain 2) that fold into ``weight``/``bias`` exactly."""
    import torch

    c_out, c_in = weight.shape[:2]
    expand = torch.zeros(2 * c_in, c_in, 1, 1)
    expand[:c_in, :, 0, 0] = torch.eye(c_in)
    middle = torch.zeros(2 * c_out, 2 * c_in, 3, 3)
    middle[:c_out, :c_in] = weight
    middle_bias = torch.zeros(2 * c_out)
    middle_bias[:c_out] = bias
    reduce = torch.zeros(c_out, 2 * c_out, 1, 1)
    reduce[:, :c_out, 0, 0] = torch.eye(c_out)
    return {
        f"{key}.sk.weight": torch.zeros(c_out, c_in, 1, 1), f"{key}.sk.bias": torch.zeros(c_out),
        f"{key}.conv.0.weight": expand, f"{key}.conv.0.bias": torch.zeros(2 * c_in),
        f"{key}.conv.1.weight": middle, f"{key}.conv.1.bias": middle_bias,
        f"{key}.conv.2.weight": reduce, f"{key}.conv.2.bias": torch.zeros(c_out),
        f"{key}.eval_conv.weight": weight.clone(), f"{key}.eval_conv.bias": bias.clone(),
    }


def _is_branch(key: str) -> bool:
    return ".sk." in key or ".conv." in key


def folded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inference form of a SPAN state dict: each ``Conv3XC`` as its one folded 3x3
    convolution (``eval_conv``), the training-time branches left out (a quarter of the size).

    :func:`unfolded` gives back a state dict :func:`build` loads.
    """
    return {key: value for key, value in state.items() if not _is_branch(key)}


def unfolded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A spandrel SPAN state dict (float32) from its :func:`folded` form: branches that fold
    back into each ``eval_conv`` exactly, as the ncnn conversion writes them.

    Raises:
        ModelError: the tensors are not a folded SPAN.
    """
    out: dict[str, torch.Tensor] = {}
    suffix = ".eval_conv.weight"
    for key, value in state.items():
        if key.endswith(suffix):
            prefix = key[: -len(suffix)]
            bias = state.get(f"{prefix}.eval_conv.bias")
            if bias is None:
                raise ModelError(f"folded SPAN lacks {prefix}.eval_conv.bias")
            out.update(_unfold(prefix, value.float(), bias.float()))
        elif not key.endswith(".eval_conv.bias"):
            out[key] = value.float()
    if not detect(out):
        raise ModelError("these tensors are not a folded SPAN (conv_1, block_1, conv_cat, upsampler missing)")
    return out


def trainable(module: nn.Module) -> list[torch.Tensor]:
    """Make a built SPAN train in its inference form and return the parameters to optimise.

    Each ``Conv3XC`` then runs its folded ``eval_conv`` (one 3x3 convolution, a quarter of
    the training-time branches' work) and stops re-folding the branches over it, so the
    module must stay in eval mode (SPAN has no layer that trains differently). Its
    :func:`folded` state dict holds the trained network.
    """
    _fold_once(module.eval())
    params = []
    for key, value in module.named_parameters():
        value.requires_grad_(not _is_branch(key))
        if not _is_branch(key):
            params.append(value)
    return params
