"""Matplotlib figures rendered to PNG bytes (Agg backend, no display needed): the priors of
`stage` and the figures of the `evaluate` report (CMF curves, ΔE histogram, examples grid)."""

from __future__ import annotations

import io
import math
import posixpath
from collections.abc import Collection, Mapping, Sequence

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
        values = np.asarray(values, np.float64)  # log10 of an empty bin: blank, not -inf
        logv = np.log10(values, out=np.full(values.shape, np.nan), where=values > 0)
        im = ax.imshow(ab_grid_image(logv, centres).T, extent=extent, cmap="viridis")
        ax.set_xlabel("a")
        ax.set_ylabel("b")
        ax.invert_yaxis()
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return figure_png(fig)


# --- the evaluate report's figures (transforms.report prepares their data) -----------------


def message_png(text: str) -> bytes:
    """A small figure holding one line of text (a plot with no data)."""
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return figure_png(fig)


def cmf_png(
    thresholds: np.ndarray,
    curves: Mapping[str, Sequence[float]],
    auc: Mapping[str, float],
    dashed: Collection[str] = (),
) -> bytes:
    """One CMF curve per model (in the mapping's order), AuC in the legend; `dashed`: the
    baselines."""
    if not curves:
        return message_png("no CMF data")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, curve in curves.items():
        ax.plot(
            thresholds,
            curve,
            linestyle="--" if m in dashed else "-",
            linewidth=1.6,
            label=f"{m} (AuC {auc[m]:.3f})",
        )
    ax.set_xlim(0, int(thresholds[-1]))
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("threshold t on the ab error ||ab − âb||₂")
    ax.set_ylabel("share of pixels with error ≤ t")
    ax.set_title("Cumulative mass function of ab error (mean over images)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(fig)


def delta_e_png(values: Mapping[str, np.ndarray], dashed: Collection[str] = ()) -> bytes:
    """Per-image mean CIEDE2000, one step histogram per model (mapping order) on shared bins."""
    from matplotlib.ticker import MaxNLocator

    values = {m: np.asarray(v, dtype=np.float64) for m, v in values.items() if len(v)}
    if not values:
        return message_png("no CIEDE2000 values")
    every = np.concatenate(list(values.values()))
    edges = np.histogram_bin_edges(every, bins=int(np.clip(np.sqrt(every.size) * 2, 5, 40)))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, v in values.items():
        ax.hist(
            v,
            bins=edges,
            histtype="step",
            linewidth=1.6,
            linestyle="--" if m in dashed else "-",
            label=f"{m} (mean {v.mean():.2f}, n={v.size})",
        )
    ax.set_xlabel("mean CIEDE2000 of an image (ΔE00)")
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Per-image colour error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def examples_png(examples: Sequence[Mapping]) -> bytes:
    """One row per example (label, source name), one column per image (gray | models | truth).

    An example: {"label", "key", "source_uri", "images": {column: uint8 array (H, W[, 3])},
    "ciede2000": {column: float}}; columns in first-seen order.
    """
    if not examples:
        return message_png("no examples")
    columns: dict[str, None] = {}
    for ex in examples:
        for name in ex["images"]:
            columns.setdefault(name, None)
    names = list(columns)
    nrows, ncols = len(examples), len(names)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.4 * nrows), squeeze=False)
    for i, ex in enumerate(examples):
        de = ex.get("ciede2000") or {}
        for j, name in enumerate(names):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            img = ex["images"].get(name)
            if img is not None:
                arr = np.asarray(img)
                if arr.ndim == 3 and arr.shape[-1] == 1:
                    arr = arr[..., 0]
                if arr.ndim == 2:
                    ax.imshow(arr, cmap="gray", vmin=0, vmax=255)
                else:
                    ax.imshow(arr)
            lines = [name] if i == 0 else []
            d = de.get(name)
            if d is not None and math.isfinite(float(d)):
                lines.append(f"ΔE00 {float(d):.2f}")
            ax.set_title("\n".join(lines), fontsize=8)
        source = posixpath.basename(str(ex.get("source_uri", ""))) or str(ex.get("key", ""))
        if len(source) > 30:
            source = source[:27] + "..."
        axes[i][0].set_ylabel(f"{ex.get('label', '')}\n{source}", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
