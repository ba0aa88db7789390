"""``span-crf``: SPAN fine-tuned in this repository for compressed input.

The pretrained SPAN of the model manifest (x2 and x4, 48 channels; Wan et al. 2024) was
trained further on frames of the bundled clips shrunk with MATLAB's bicubic kernel and sent, in
runs of five, through libx264 at a crf drawn from 18 to 28 in 4:2:0: the degradation footage
from cameras, phones and streaming has (``bench/train_srcnn.py --net span --degradation
x264``; log and sha256 in ``bench/logs/span-crf-x*.log``). The weights ship with the package in SPAN's folded inference
form, float16 (``vsr/methods/weights/span-crf-x{2,4}.safetensors``, under 1 MB each);
nothing is downloaded, and the pretrained SPAN's package is not needed to run them.

Everything else is :class:`~vsr.methods.neural.NeuralSR`'s: tiling, half precision and CUDA
streams on a GPU; scales other than 2 and 4 resize the output of the x4 network (x1 of the x2).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from vsr.errors import ConfigError, ModelError
from vsr.methods.neural import NeuralParams, _check_scale, _neural
from vsr.methods.params import parse

if TYPE_CHECKING:
    from vsr.methods.base import Method
    from vsr.models.loader import LoadedModel

#: Scales a network ships for.
NATIVE = (2, 4)


def load_model(native: int) -> LoadedModel:
    """The shipped span-crf network for ``native`` (2 or 4), float32, in eval mode on the CPU.

    Raises:
        ModelError: the file is missing (a source checkout without it) or not a folded SPAN.
    """
    from safetensors.torch import load

    from vsr.models.arch.span import MARGIN, build, unfolded
    from vsr.models.loader import LoadedModel

    name = f"span-crf-x{native}"
    try:
        data = resources.files("vsr.methods").joinpath("weights", f"{name}.safetensors").read_bytes()
    except (FileNotFoundError, OSError):
        raise ModelError(f"the weights vsr/methods/weights/{name}.safetensors are missing; rebuild them with "
                         f"python bench/train_srcnn.py --net span --scales {native} --degradation x264 "
                         f"--out vsr/methods/weights/{name}.safetensors and the other options on the first "
                         f"line of bench/logs/{name}.log") from None
    module = build(unfolded(load(data))).eval()
    return LoadedModel(module=module, scale=native, name=name, arch="span", margin=MARGIN)


def build(scale: int = 2, **params: Any) -> Method:
    """``--method span-crf``: the x2 network for scales 1 and 2, the x4 above (other scales
    resize its output).

    Params: :class:`~vsr.methods.neural.NeuralParams` but ``model``.

    Raises:
        ConfigError: unknown parameter or bad value. ModelError: weights missing.
    """
    p = parse(NeuralParams, params, method="span-crf")
    if p.model is not None:
        raise ConfigError("span-crf runs its own weights; to run another network use --method model --model FILE")
    native = 2 if _check_scale("span-crf", scale) <= 2 else 4
    return _neural("span-crf", scale, load_model(native), p)
