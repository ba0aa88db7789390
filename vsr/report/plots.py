"""Charts for the pages, drawn by matplotlib and returned as inline SVG."""

from __future__ import annotations

import io
from collections.abc import Sequence

_COLOURS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


def _figure(width: float = 7.2, height: float = 2.4):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.patch.set_alpha(0)
    return fig


def _svg(fig) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": "sans-serif"}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or doctype


def lines(x: Sequence[float], series: dict[str, Sequence[float | None]], *, ylabel: str, xlabel: str = "time (s)",
          title: str = "", step: bool = False, ymin: float | None = None, integer: bool = False) -> str:
    """A line chart, one line per entry of ``series`` over ``x``; ``None`` values leave gaps.

    Args:
        x: the horizontal axis, one value per sample.
        series: label to values (each as long as ``x``).
        ylabel, xlabel, title: axis labels and title.
        step: draw steps (for counters) instead of straight segments.
        ymin: lower limit of the vertical axis (``None``: matplotlib's choice).
        integer: counts: whole-number ticks, and an axis up to at least 1.

    Returns:
        An ``<svg>`` element to put in the page as it is.
    """
    fig = _figure()
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(series.items()):
        ys = [float("nan") if v is None else v for v in values]
        draw = ax.step if step else ax.plot
        kwargs = {"where": "post"} if step else {}
        draw(x, ys, label=label, color=_COLOURS[i % len(_COLOURS)], linewidth=1.6, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, loc="left", fontsize=11)
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    if integer:
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(top=max(1.0, ax.get_ylim()[1]))
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=9, loc="best")
    return _svg(fig)


def colour_bar(top: float, label: str, cmap: str = "magma") -> str:
    """A horizontal colour scale from 0 to ``top`` with ``label``, as an ``<svg>`` element."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig = _figure(4.0, 0.75)
    ax = fig.add_subplot()
    fig.colorbar(ScalarMappable(Normalize(0, top), colormaps[cmap]), cax=ax, orientation="horizontal", label=label)
    return _svg(fig)
