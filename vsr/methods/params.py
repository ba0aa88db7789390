"""Typed method parameters: one frozen dataclass per method, and everything derived from it.

A method's parameters are a frozen dataclass (``MisrParams``, ``NeuralParams``...): each
field's type and default say what it takes, its line under ``Attributes:`` in the class
docstring says what it does, and the class's ``__post_init__`` checks ranges. From that one
class this module derives:

- :func:`parse`: values from Python (``{"window": 7}``), from TOML presets, or as text from
  ``--param KEY=VALUE`` and flags, checked and coerced to the field's type, with a one-line
  :class:`~vsr.errors.ConfigError` naming the method, the parameter, the bad value and what
  it takes;
- :func:`describe_fields`: name, type, default and help of every field, for ``vsr methods NAME``
  and for the command line's flags (``flags``, a class attribute, names the fields that get a
  flag of their own, such as ``--window``);
- :func:`as_dict`: the canonical JSON-able values, for job keys and records.

Python values are taken strictly (``causal="yes"`` is refused: a bool is ``True`` or
``False``); text is read as the type says (``"yes"``, ``"on"``, ``"1"`` are true).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vsr.errors import ConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a method, as listings and flags show it.

    Attributes:
        name: the field's name (``--param`` key; its flag is ``--`` + name with dashes).
        kind: the type in words: ``int``, ``float``, ``bool``, ``str`` or ``a | b`` choices,
            with ``| None`` where the parameter may be left unset.
        default: the default value (JSON-able).
        help: what the parameter does, from the class docstring.
        flag: whether the command line gives it a flag of its own.
        choices: the values a ``Literal`` type allows, else ``()``.
    """

    name: str
    kind: str
    default: Any
    help: str
    flag: bool
    choices: tuple[Any, ...] = ()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _kind(hint: Any) -> str:
    base, optional = _unwrap(hint)
    if typing.get_origin(base) is Literal:
        text = " | ".join(str(c) for c in typing.get_args(base))
    else:
        text = getattr(base, "__name__", str(base))
    return f"{text} | None" if optional else text


@functools.cache
def _docstring_help(cls: type) -> dict[str, str]:
    """``name -> text`` from the ``Attributes:`` sections of ``cls`` and its bases."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        section = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)*)", doc, re.MULTILINE)
        if section is None:
            continue
        name = None
        for line in section.group(1).splitlines():
            entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: ?(.*)$", line)
            if entry:
                name = entry.group(1)
                out[name] = entry.group(2).strip()
            elif name is not None and line.startswith("     ") and line.strip():
                out[name] += " " + line.strip()
    return {k: re.sub(r"``([^`]*)``", r"\1", v) for k, v in out.items()}


def flag_names(cls: type) -> frozenset[str]:
    """Fields of ``cls`` that get a flag of their own: the union of ``flags`` over its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(klass.__dict__.get("flags", ()))
    return frozenset(names)


def describe_fields(cls: type) -> list[ParamInfo]:
    """Every parameter of the dataclass ``cls``, in field order."""
    hints, helps, flags = _hints(cls), _docstring_help(cls), flag_names(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, _ = _unwrap(hints[f.name])
        choices = typing.get_args(base) if typing.get_origin(base) is Literal else ()
        out.append(ParamInfo(f.name, _kind(hints[f.name]), f.default, helps.get(f.name, ""), f.name in flags,
                             choices))
    return out


def _what(base: Any) -> str:
    if typing.get_origin(base) is Literal:
        options = [str(c) for c in typing.get_args(base)]
        return " or ".join(options) if len(options) <= 2 else "one of " + ", ".join(options)
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(base, str(base))


def _coerce(method: str, name: str, hint: Any, value: Any, text: bool) -> Any:
    base, optional = _unwrap(hint)
    if value is None and optional:
        return None
    if text and isinstance(value, str):
        value = _from_text(base, optional, value)
        if value is None:
            return None
    ok = False
    if typing.get_origin(base) is Literal:
        ok = any(value == c and type(value) is type(c) for c in typing.get_args(base))
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{method}: parameter {name} takes {_what(base)}"
                          f"{' (or none)' if optional else ''}; got {value!r}")
    return value


def _from_text(base: Any, optional: bool, text: str) -> Any:
    """Text as ``base`` reads it; text that does not read is returned as it is (and refused)."""
    if optional and base is not str and text.strip().lower() in ("", "none"):
        return None
    if typing.get_origin(base) is Literal:
        for choice in typing.get_args(base):
            if str(choice) == text:
                return choice
        return text
    if base is bool:
        lowered = text.strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    for kind in (int, float):
        if base is kind:
            try:
                return kind(text)
            except ValueError:
                return text
    return text


def parse(cls: type, values: Mapping[str, Any] | None, *, method: str, text: bool = False) -> Any:
    """``cls`` built from ``values``, every one checked against its field.

    Args:
        cls: a frozen parameter dataclass.
        values: field name -> value; ``None`` or missing fields keep their defaults. An
            instance of ``cls`` is returned as it is.
        method: the method's name, for messages.
        text: string values are read as the field's type says (``"7"`` for an int, ``"on"`` for
            a bool, ``"none"`` for an unset optional number); otherwise values must already
            have the field's type (an int is accepted for a float).

    Raises:
        ConfigError: an unknown parameter, a value of the wrong type, or one the class's own
            checks refuse; one line naming the method, the parameter and the value.
    """
    if isinstance(values, cls):
        return values
    values = {k: v for k, v in (values or {}).items() if v is not None}
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(k for k in values if k not in known)
    if unknown and not known:
        raise ConfigError(f"{method} takes no parameters; got {', '.join(unknown)}")
    if unknown:
        raise ConfigError(f"{method} has no parameter {', '.join(unknown)}; it takes: {', '.join(known)} "
                          f"(see vsr methods {method})")
    hints = _hints(cls)
    return cls(**{k: _coerce(method, k, hints[k], v, text) for k, v in values.items()})


@dataclass(frozen=True)
class NoParams:
    """The parameters of a method that takes none."""


def as_dict(params: Any) -> dict[str, Any]:
    """Every field of a parameter dataclass and its value: canonical and JSON-able."""
    return dataclasses.asdict(params)
