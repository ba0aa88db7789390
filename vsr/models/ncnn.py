"""A reader of ncnn model files: the ``.param`` text graph and the ``.bin`` weights.

Only what the shipped super-resolution models use is read: layer types, blob names,
integer/float/array parameters, the weights of ``Convolution``, ``Deconvolution``
and ``PReLU`` layers and the constants of ``MemoryData`` layers. Weights come back
as numpy arrays in the order ncnn stores them, so converting a graph into a torch
state dict is a matter of walking the weighted layers in file order.

File format facts (ncnn's own documentation of its model format):

* ``.param``: magic ``7767517``; ``layer_count blob_count``; one layer a line:
  ``Type name n_in n_out in_blobs... out_blobs... key=value...``. A negative key
  ``-23300 - k`` marks an array parameter ``k`` written as ``count,v1,v2...``.
* ``.bin``: for each weighted layer, in file order, a 4-byte tag then the weight
  (tag ``0x01306B47``: float16; ``0``: float32), then the bias as raw float32.
  ``PReLU`` slopes and ``MemoryData`` constants are raw float32 with no tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsr.errors import ModelError

PARAM_MAGIC = 7767517
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32 = 0
TAG_INT8 = 0x000D4B38
_ARRAY_KEY_BASE = -23300


@dataclass
class NcnnLayer:
    """One layer of an ncnn graph.

    Attributes:
        type: ncnn layer type (``"Convolution"``, ``"PReLU"``, ``"Eltwise"``...).
        name: layer name, unique in the graph.
        inputs: names of the blobs it reads.
        outputs: names of the blobs it writes.
        params: parameter id to value: ``int``, ``float`` or a ``list`` of numbers (arrays).
        weights: the arrays read from the ``.bin`` for this layer (empty for layers without weights):
            ``[weight, bias]`` for convolutions (bias only if ``5=1``), ``[slopes]`` for PReLU.
    """

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list[float]] = field(default_factory=dict)
    weights: list[np.ndarray] = field(default_factory=list)

    def param(self, key: int, default: int | float | list[float] | None = None):
        """Parameter ``key`` or ``default`` when the layer does not set it."""
        return self.params.get(key, default)


@dataclass
class NcnnGraph:
    """A parsed ncnn model: its layers in file order.

    Attributes:
        layers: every layer, in the order of the ``.param`` file.
        blob_count: number of blobs the header declares.
    """

    layers: list[NcnnLayer]
    blob_count: int

    def of_type(self, *types: str) -> list[NcnnLayer]:
        """Layers whose type is one of ``types``, in file order."""
        return [layer for layer in self.layers if layer.type in types]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_param(path: str | Path) -> NcnnGraph:
    """Parse an ncnn ``.param`` text file.

    Args:
        path: the ``.param`` file.

    Returns:
        The graph; layer ``weights`` are empty until :func:`read_bin` fills them.

    Raises:
        ModelError: not an ncnn param file, or a malformed line.
    """
    lines = Path(path).read_text().split("\n")
    lines = [line.strip() for line in lines if line.strip()]
    if not lines or lines[0] != str(PARAM_MAGIC):
        raise ModelError(f"{path}: not an ncnn .param file (expected magic {PARAM_MAGIC} on line 1)")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError) as exc:
        raise ModelError(f"{path}: malformed header line 2: {lines[1:2]}") from exc
    layers: list[NcnnLayer] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        try:
            kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
            inputs = tokens[4 : 4 + n_in]
            outputs = tokens[4 + n_in : 4 + n_in + n_out]
            params: dict[int, int | float | list[float]] = {}
            for item in tokens[4 + n_in + n_out :]:
                key_text, _, value_text = item.partition("=")
                key = int(key_text)
                if key <= _ARRAY_KEY_BASE:
                    count, *values = value_text.split(",")
                    if len(values) != int(count):
                        raise ValueError(f"array {key} declares {count} values, has {len(values)}")
                    params[_ARRAY_KEY_BASE - key] = [_number(v) for v in values]
                else:
                    params[key] = _number(value_text)
        except (IndexError, ValueError) as exc:
            raise ModelError(f"{path}:{lineno}: malformed layer line: {exc}") from exc
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise ModelError(f"{path}: header declares {layer_count} layers, file has {len(layers)}")
    return NcnnGraph(layers, blob_count)


class _Cursor:
    """Reads consecutive arrays from the bytes of a ``.bin`` file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def raw(self, count: int, dtype: str) -> np.ndarray:
        size = count * np.dtype(dtype).itemsize
        if self.offset + size > len(self.data):
            raise ModelError(f"{self.path}: truncated: need {size} bytes at offset {self.offset}, "
                             f"file has {len(self.data)}")
        array = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += size
        return array

    def tagged(self, count: int) -> np.ndarray:
        tag = int(self.raw(1, "<u4")[0])
        if tag == TAG_FLOAT16:
            return self.raw(count, "<f2").astype(np.float32)
        if tag == TAG_FLOAT32:
            return self.raw(count, "<f4").astype(np.float32)
        kind = "int8-quantised" if tag == TAG_INT8 else f"unknown (tag 0x{tag:08X})"
        raise ModelError(f"{self.path}: {kind} weights at offset {self.offset - 4} are not supported")


def read_bin(graph: NcnnGraph, path: str | Path) -> NcnnGraph:
    """Fill the ``weights`` of ``graph``'s layers from an ncnn ``.bin`` file.

    Args:
        graph: the graph from :func:`read_param` of the matching ``.param``.
        path: the ``.bin`` file.

    Returns:
        ``graph`` itself. Convolution weights are ``(out, in, kh, kw)`` float32 arrays;
        Deconvolution weights are as ncnn stores them, ``(out, in, kh, kw)``; biases and
        PReLU slopes are 1-D float32; a MemoryData constant is ``(c, [d,] h, w)`` without
        its unset dimensions.

    Raises:
        ModelError: unsupported weight storage, or a file whose size does not match the graph
            (every byte must be consumed).
    """
    path = Path(path)
    cursor = _Cursor(path.read_bytes(), path)
    for layer in graph.layers:
        if layer.type in ("Convolution", "Deconvolution"):
            outputs = int(layer.param(0, 0))
            kw = int(layer.param(1, 0))
            kh = int(layer.param(11, kw))
            count = int(layer.param(6, 0))
            if layer.param(7, 1) != 1:
                raise ModelError(f"{path}: grouped {layer.type} {layer.name} is not supported")
            inputs = count // (outputs * kh * kw)
            weight = cursor.tagged(count).reshape(outputs, inputs, kh, kw)
            layer.weights = [weight]
            if layer.param(5, 0):
                layer.weights.append(cursor.raw(outputs, "<f4").copy())
        elif layer.type == "PReLU":
            layer.weights = [cursor.raw(int(layer.param(0, 1)), "<f4").copy()]
        elif layer.type == "MemoryData":
            shape = [int(layer.param(k, 0)) for k in (2, 11, 1, 0)]  # c, d, h, w; 0 = absent
            shape = [n for n in shape if n] or [1]
            layer.weights = [cursor.raw(int(np.prod(shape)), "<f4").reshape(shape).copy()]
        elif layer.type in ("InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise ModelError(f"{path}: layer type {layer.type} ({layer.name}) is not supported by this reader")
    if cursor.offset != len(cursor.data):
        raise ModelError(f"{path}: {len(cursor.data) - cursor.offset} bytes left after the last weighted layer; "
                         "the .bin does not match the .param")
    return graph


def read_model(param_path: str | Path, bin_path: str | Path) -> NcnnGraph:
    """Read a ``.param``/``.bin`` pair; see :func:`read_param` and :func:`read_bin`."""
    return read_bin(read_param(param_path), bin_path)
