"""Turn an ncnn graph's weights into the state dict of a matching torch module.

The shipped models were exported from torch, so their weighted layers appear in the
``.param`` in the same order as the modules of the network that produced them. The
conversion walks both in order and checks every shape, so a graph that does not
match the architecture fails loudly instead of producing a subtly wrong model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vsr.errors import ModelError
from vsr.models.ncnn import NcnnGraph


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _copy(param: torch.Tensor, value: torch.Tensor, where: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise ModelError(f"ncnn weights do not fit the architecture at {where}: "
                         f"expected {tuple(param.shape)}, got {tuple(value.shape)}")
    with torch.no_grad():
        param.copy_(value)


def load_ncnn_weights(module: nn.Module, graph: NcnnGraph) -> nn.Module:
    """Fill ``module``'s convs, transposed convs and PReLUs from ``graph``, in order.

    Args:
        module: a freshly built network whose weighted modules are in the graph's order.
        graph: a graph with weights (:func:`vsr.models.ncnn.read_model`).

    Returns:
        ``module``, with its weights replaced.

    Raises:
        ModelError: a different number of weighted layers, or a shape mismatch.
    """
    layers = graph.of_type("Convolution", "Deconvolution", "PReLU")
    kinds = {nn.Conv2d: "Convolution", nn.ConvTranspose2d: "Deconvolution", nn.PReLU: "PReLU"}
    targets = [(name, m) for name, m in module.named_modules() if type(m) in kinds]
    if len(targets) != len(layers):
        raise ModelError(f"ncnn graph has {len(layers)} weighted layers; {type(module).__name__} "
                         f"expects {len(targets)}")
    for (name, target), layer in zip(targets, layers):
        if kinds[type(target)] != layer.type:
            raise ModelError(f"ncnn layer {layer.name} is {layer.type}; module {name} expects {kinds[type(target)]}")
        if isinstance(target, nn.PReLU):
            _copy(target.weight, _tensor(layer.weights[0]), name)
            continue
        weight = _tensor(layer.weights[0])
        if isinstance(target, nn.ConvTranspose2d):
            # ncnn keeps a deconvolution's kernel as (out, in, kh, kw); torch's transposed
            # conv wants (in, out, kh, kw). The taps are in the same spatial order.
            weight = weight.transpose(0, 1)
        _copy(target.weight, weight, f"{name}.weight")
        if target.bias is not None:
            if len(layer.weights) < 2:
                raise ModelError(f"ncnn layer {layer.name} has no bias; module {name} expects one")
            _copy(target.bias, _tensor(layer.weights[1]), f"{name}.bias")
    return module
