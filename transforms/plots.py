"""Matplotlib figures rendered to PNG bytes (Agg backend, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from transforms.bins import GRID  # noqa: E402


def figure_png(fig) -> bytes:
    """Render and close a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def ab_grid_image(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Scatter per-bin values onto the 2-D ab grid (NaN where no bin)."""
    idx = np.rint((centres + 110.0) / GRID).astype(int)
    n = int(round(220 / GRID)) + 1
    img = np.full((n, n), np.nan)
    img[idx[:, 0], idx[:, 1]] = values
    return img


def priors_png(smoothed: np.ndarray, weights: np.ndarray, centres: np.ndarray) -> bytes:
    """Two panels over the ab plane: log10 of the smoothed prior and of the rebalancing weights."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    extent = (-115, 115, 115, -115)
    for ax, values, title in (
        (axes[0], smoothed, "log10 prior P~(a,b)"),
        (axes[1], weights, "log10 rebalancing weight w(a,b)"),
    ):
        im = ax.imshow(ab_grid_image(np.log10(values), centres).T, extent=extent, cmap="viridis")
        ax.set_xlabel("a")
        ax.set_ylabel("b")
        ax.invert_yaxis()
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return figure_png(fig)
