"""Rendering the HTML templates kept beside this module as package data."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from vsr.errors import OutputError


def _template_source(name: str):
    """The jinja2 loader's view of ``templates/NAME``, read with importlib.resources."""
    source = resources.files("vsr.report").joinpath("templates", name).read_text(encoding="utf-8")
    return source, None, lambda: True


def render(template: str, **context: Any) -> str:
    """Render ``templates/TEMPLATE`` (HTML-escaped) with ``context``.

    Raises:
        jinja2.TemplateNotFound: no such template in the package.
    """
    import jinja2

    env = jinja2.Environment(loader=jinja2.FunctionLoader(_template_source), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    from vsr import __version__

    context.setdefault("version", __version__)
    context.setdefault("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return env.get_template(template).render(**context)


def data_uri(payload: bytes, mime: str) -> str:
    """``payload`` as a ``data:`` URI, so the page needs no other file."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def write_atomically(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` under a hidden temporary name beside ``path``, then rename it into place.

    Raises:
        OutputError: the folder is missing or not writable.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
