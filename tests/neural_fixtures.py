"""Fixtures shared by tests/test_neural.py and tests/test_models.py.

Imported by those modules (tests/conftest.py, which provides the ``device`` fixture and
the CUDA skip, belongs to the lead): a session-wide weights cache so each model converts
once per run, and an ncnn reference runner.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

def has_package(package: str) -> bool:
    return importlib.util.find_spec(package.replace("-", "_")) is not None


def needs_package(package: str):
    return pytest.mark.skipif(not has_package(package), reason=f"{package} is not installed")


@pytest.fixture(scope="session")
def vsr_weights(tmp_path_factory):
    """A fresh ``VSR_WEIGHTS_DIR`` for the whole session (models convert once)."""
    path = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSR_WEIGHTS_DIR", str(path))
        yield path


def run_ncnn(param: str, binary: str, image: np.ndarray, in_blob: str, out_blob: str) -> np.ndarray:
    """Run an ncnn model on the CPU in float32: ``(C, H, W)`` float32 -> ``(C, H', W')``."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)
    net.opt.num_threads = os.cpu_count() or 1
    assert net.load_param(param) == 0 and net.load_model(binary) == 0
    extractor = net.create_extractor()
    data = np.ascontiguousarray(image, dtype=np.float32)  # ncnn.Mat borrows it: keep it alive
    extractor.input(in_blob, ncnn.Mat(data))
    status, out = extractor.extract(out_blob)
    assert status == 0
    return np.array(out)
