"""Matplotlib helpers: every figure imcphys writes has labelled axes with units."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# No backend is chosen here: in a notebook the figures stay inline. The command line and the experiment scripts,
# which only write files, select Agg themselves (``headless()``).


def headless() -> None:
    """Select matplotlib's file-only Agg backend (for the command line and scripts; never on import)."""
    import matplotlib

    matplotlib.use("Agg")


def subplots(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (5.0, 3.6), **kwargs):
    """A figure with ``nrows × ncols`` axes, each ``size`` inches, constrained layout."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), layout="constrained", squeeze=False, **kwargs
    )
    return fig, axes


def label(ax: Axes, xlabel: str, ylabel: str, title: str | None = None) -> Axes:
    """Set axis labels (write the unit in brackets: ``"V [V]"``) and an optional title; add a light grid."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path`` and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
