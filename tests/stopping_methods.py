"""Methods that fail or crawl on purpose, and a ``vsr`` command that knows them.

``python tests/stopping_methods.py run ...`` is the real ``vsr`` command with two more
methods registered, so tests can inject a failure or a slow step into a real process:

- ``explode``: nearest x2 that raises ``RuntimeError`` at frame ``at`` (``--param at=N``, or
  ``$EXPLODE_AT``);
- ``crawl``: nearest x2 after about ``seconds`` of native torch work per frame.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vsr.methods.base import Method


def _nearest(frame, scale: int):
    return frame.repeat_interleave(scale, -1).repeat_interleave(scale, -2)


class Explode(Method):
    """Nearest x2 whose ``at``-th call raises: a method failing part way through a run."""

    name, scale, radius = "explode", 2, 0

    def __init__(self, at: int = 5) -> None:
        super().__init__()
        self.at = at
        self.calls = 0

    def __call__(self, frames, ref):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError(f"boom at frame {self.at}")
        return _nearest(frames[ref], self.scale)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "scale": self.scale}  # where it fails does not change the output


class Crawl(Method):
    """Nearest x2 after ``seconds`` of matrix products: a slow model step in native code."""

    name, scale, radius = "crawl", 2, 0

    def __init__(self, seconds: float = 0.5) -> None:
        super().__init__()
        self.seconds = seconds

    def __call__(self, frames, ref):
        import torch

        a = torch.rand(384, 384)
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            a = torch.tanh(a @ a)
        return _nearest(frames[ref], self.scale)


@dataclass(frozen=True)
class ExplodeParams:
    """Parameters of ``explode``.

    Attributes:
        at: the call that raises.
    """

    at: int = 5


@dataclass(frozen=True)
class CrawlParams:
    """Parameters of ``crawl``.

    Attributes:
        seconds: native work per frame.
    """

    seconds: float = 0.5


def explode(scale: int = 2, at: int = 5) -> Explode:
    # $EXPLODE_AT moves the failure without changing the job's parameters (and so its key).
    return Explode(int(os.environ.get("EXPLODE_AT", at)))


def crawl(scale: int = 2, seconds: float = 0.5) -> Crawl:
    return Crawl(seconds)


def register() -> None:
    from vsr.methods import registry

    for name in ("explode", "crawl"):
        registry.METHODS[name] = registry.MethodEntry(name, f"stopping_methods:{name}", f"test method {name}",
                                                      params=f"{name.capitalize()}Params")


COMMAND = [sys.executable, str(Path(__file__).resolve())]

if __name__ == "__main__":
    register()
    from vsr.cli import main

    sys.exit(main())
