"""What every figure shares: its colours and how it is saved.

Colours depend on an index only (mode id, curve rank), so a subset of the points keeps
the colours of the whole; a figure is closed once saved, so drawing many never piles up
open figures.
"""

import os

import matplotlib
import matplotlib.pyplot as plt

DPI = 150


def palette(n):
    """n distinct colours: tab10, tab20, or evenly spaced viridis beyond 20.

    Args:
      n: how many colours.

    Returns:
      A list of n RGBA tuples.
    """
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def save_figure(fig, path):
    """Writes fig as a PNG at path (creating its folder) and closes it.

    Args:
      fig: a matplotlib Figure.
      path: the PNG's path.

    Returns:
      path as a str.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return str(path)
