"""The `evaluate` report: aggregate per-(image, model) metrics, plot them, render Markdown / HTML.

Input rows are the `evaluate` job's metrics rows: the columns of `schema.METRICS_SCHEMA` plus
`cmf`, the image's cumulative mass function of ab error at t = 0..150 (151 floats; a row
without it is left out of the mean CMF curve only). Missing values (None) count as NaN.

- `aggregate` gives, per model, the image count, each metric's mean with a 95% percentile
  bootstrap CI over images (`transforms.metrics.bootstrap_ci`; non-finite values such as the
  infinite PSNR of an exact prediction are dropped, a column with no finite value gives None),
  the mean CMF curve (each image weighted equally), and paired bootstrap CIs of the per-image
  differences (matched by key) of each real model against each baseline and against the first
  real model, for CIEDE2000 and AuC.
- `cmf_plot`, `delta_e_histogram`, `example_grid` return PNG bytes (Agg via `transforms.plots`).
- `render_markdown` / `render_html` render the same content; the Markdown references the PNG
  files by name, the HTML inlines them as base64 data URIs (one self-contained file).
- `build_report` writes report.md, report.html, cmf.png, delta_e_hist.png, examples.png and
  summary.json (aggregate + meta [+ comparison], strict JSON: NaN and inf -> null) to any fsspec
  URL; `load_summary` reads summary.json back (e.g. a previous run to compare against).

Models keep their first-seen order, with the baselines ("no colour", "constant prior") last.
"""

from __future__ import annotations

import base64
import datetime
import html
import logging
import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from transforms import fileio
from transforms.metrics import AUC_THRESHOLDS, bootstrap_ci, paired_bootstrap_diff
from transforms.plots import figure_png

log = logging.getLogger(__name__)

# (column, label, higher_is_better), in table order.
METRICS: list[tuple[str, str, bool]] = [
    ("psnr", "PSNR (dB)", True),
    ("ssim", "SSIM", True),
    ("ciede2000", "CIEDE2000 (mean ΔE00)", False),
    ("auc", "AuC", True),
    ("auc_rebalanced", "AuC rebalanced", True),
    ("colorfulness", "Colorfulness", True),
    ("delta_colorfulness", "|ΔCF|", False),
    ("bits_per_dim", "bits/dim", False),
]
OPTIONAL_METRICS = frozenset({"bits_per_dim"})  # table column only if some model has a value
PAIRED_METRICS = ("ciede2000", "auc")  # per-image differences tested against baselines
BASELINES = ("no colour", "constant prior")
CONFIDENCE = 0.95

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
CMF_PNG = "cmf.png"
HIST_PNG = "delta_e_hist.png"
EXAMPLES_PNG = "examples.png"
SUMMARY_JSON = "summary.json"

_LABEL = {c: lab for c, lab, _ in METRICS}
_HIGHER = {c: h for c, _, h in METRICS}
_FORMAT = {
    "psnr": ".2f",
    "ssim": ".4f",
    "ciede2000": ".2f",
    "auc": ".4f",
    "auc_rebalanced": ".4f",
    "colorfulness": ".1f",
    "delta_colorfulness": ".1f",
    "bits_per_dim": ".3f",
}
_N_CMF = len(AUC_THRESHOLDS)


# --- aggregation -------------------------------------------------------------------------


def _value(row: Mapping, column: str) -> float:
    v = row.get(column)
    return math.nan if v is None else float(v)


def _key(row: Mapping) -> str:
    return str(row.get("key") or row.get("source_uri"))


def model_order(rows: Iterable[Mapping], baselines: Sequence[str] = BASELINES) -> list[str]:
    """Model names in first-seen order, baselines last (also in first-seen order)."""
    seen: dict[str, None] = {}
    for r in rows:
        seen.setdefault(str(r["model"]), None)
    names = list(seen)
    return [m for m in names if m not in baselines] + [m for m in names if m in baselines]


def _index(rows: Iterable[Mapping]) -> tuple[dict[str, dict[str, Mapping]], int]:
    """{model: {key: row}}, keeping the first row of a duplicated (model, key); + #duplicates."""
    out: dict[str, dict[str, Mapping]] = {}
    dups = 0
    for r in rows:
        per = out.setdefault(str(r["model"]), {})
        k = _key(r)
        if k in per:
            dups += 1
            continue
        per[k] = r
    if dups:
        log.warning("%d duplicate (model, key) metrics rows ignored", dups)
    return out, dups


def _ci(values: Sequence[float] | np.ndarray, n_boot: int, seed: int) -> dict | None:
    v = np.asarray(values, dtype=np.float64)
    n = int(np.isfinite(v).sum())
    if n == 0:
        return None
    mean, low, high = bootstrap_ci(v, n_boot=n_boot, seed=seed)
    return {"mean": mean, "low": low, "high": high, "n": n}


def _mean_cmf(rows: Iterable[Mapping]) -> list[float] | None:
    curves = []
    for r in rows:
        c = r.get("cmf")
        if c is None:
            continue
        c = np.asarray(c, dtype=np.float64).ravel()
        if c.size == _N_CMF and np.all(np.isfinite(c)):
            curves.append(c)
    if not curves:
        return None
    return np.mean(curves, axis=0).tolist()


def curve_auc(curve: Sequence[float] | None) -> float | None:
    """Area under a CMF over t = 0..150 divided by 150 (trapezoid rule, as metrics.auc)."""
    if curve is None:
        return None
    c = np.asarray(curve, dtype=np.float64)
    t = AUC_THRESHOLDS.astype(np.float64)
    return float(np.sum((c[1:] + c[:-1]) * 0.5 * np.diff(t)) / (t[-1] - t[0]))


def _paired(
    index: Mapping[str, Mapping[str, Mapping]],
    model: str,
    reference: str,
    column: str,
    n_boot: int,
    seed: int,
) -> dict:
    mine, theirs = index.get(model, {}), index.get(reference, {})
    keys = [k for k in mine if k in theirs]
    a = np.array([_value(mine[k], column) for k in keys], dtype=np.float64)
    b = np.array([_value(theirs[k], column) for k in keys], dtype=np.float64)
    n = int(np.isfinite(a - b).sum()) if keys else 0
    out = {"model": model, "reference": reference, "metric": column, "n_pairs": n}
    if n == 0:
        return {
            **out,
            "mean": None,
            "low": None,
            "high": None,
            "excludes_zero": None,
            "verdict": "no pairs",
        }
    mean, low, high = paired_bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
    excludes = bool(low > 0.0 or high < 0.0)
    if not excludes:
        verdict = "no significant difference"
    else:
        verdict = "better" if (mean > 0) == _HIGHER.get(column, True) else "worse"
    return {
        **out,
        "mean": mean,
        "low": low,
        "high": high,
        "excludes_zero": excludes,
        "verdict": verdict,
    }


def paired_diff(
    rows: Iterable[Mapping],
    model: str,
    reference: str,
    column: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Paired bootstrap CI of mean(model − reference) of `column` over images in both (by key).

    Returns {model, reference, metric, n_pairs, mean, low, high, excludes_zero, verdict}, where
    verdict is "better" / "worse" (CI excludes 0; direction by the metric's higher_is_better),
    "no significant difference", or "no pairs" (then mean/low/high/excludes_zero are None).
    """
    index, _ = _index(rows)
    return _paired(index, model, reference, column, n_boot, seed)


def aggregate(
    rows: Iterable[Mapping],
    n_boot: int = 1000,
    seed: int = 0,
    *,
    baselines: Sequence[str] = BASELINES,
) -> dict:
    """Per-model summary of metrics rows (see the module docstring), plain Python values with
    None where a value is undefined (strict-JSON ready).

    {"models": [...], "baselines": [...], "n_images", "n_rows", "duplicates",
     "metrics": [{"column", "label", "higher_is_better"}...], "n_boot", "seed", "confidence",
     "per_model": {model: {"n", "metrics": {column: {"mean","low","high","n"} | None},
                           "cmf": [151 floats] | None, "cmf_auc": float | None}},
     "truth": {"colorfulness": {...} | None},
     "comparisons": [paired_diff dicts + "kind": "baseline" | "first model"]}
    """
    rows = list(rows)
    index, dups = _index(rows)
    models = model_order(rows, baselines)
    per_model = {}
    for m in models:
        mrows = list(index[m].values())
        curve = _mean_cmf(mrows)
        per_model[m] = {
            "n": len(mrows),
            "metrics": {c: _ci([_value(r, c) for r in mrows], n_boot, seed) for c, _, _ in METRICS},
            "cmf": curve,
            "cmf_auc": curve_auc(curve),
        }
    truth_by_key: dict[str, float] = {}
    for per in index.values():
        for k, r in per.items():
            v = _value(r, "colorfulness_truth")
            if k not in truth_by_key or not math.isfinite(truth_by_key[k]):
                truth_by_key[k] = v
    real = [m for m in models if m not in baselines]
    present_baselines = [m for m in models if m in baselines]
    comparisons = []
    for m in real:
        refs = [(b, "baseline") for b in present_baselines]
        if m != real[0]:
            refs.append((real[0], "first model"))
        for ref, kind in refs:
            for c in PAIRED_METRICS:
                comparisons.append({**_paired(index, m, ref, c, n_boot, seed), "kind": kind})
    return {
        "models": models,
        "baselines": present_baselines,
        "n_images": len({_key(r) for r in rows}),
        "n_rows": len(rows),
        "duplicates": dups,
        "metrics": [{"column": c, "label": lab, "higher_is_better": h} for c, lab, h in METRICS],
        "n_boot": n_boot,
        "seed": seed,
        "confidence": CONFIDENCE,
        "per_model": per_model,
        "truth": {"colorfulness": _ci(list(truth_by_key.values()), n_boot, seed)},
        "comparisons": comparisons,
    }


def visible_metrics(agg: Mapping) -> list[tuple[str, str, bool]]:
    """The METRICS shown in the table: optional ones (bits/dim) only where some model has one."""
    per = agg.get("per_model", {})
    return [
        (c, lab, h)
        for c, lab, h in METRICS
        if c not in OPTIONAL_METRICS or any((p.get("metrics") or {}).get(c) for p in per.values())
    ]


def compare_runs(agg: Mapping, previous: Mapping) -> dict:
    """Metric means of this run against a previous aggregate (or summary holding one).

    {"models_both", "only_current", "only_previous", "n_images": {"current", "previous"},
     "deltas": [{"model", "metric", "current", "previous", "delta" (current − previous),
                 "ci_overlap" (the two CIs overlap), "change": "better"|"worse"|"same"}]}
    """
    prev = previous.get("aggregate", previous)
    cur_models, prev_models = list(agg["models"]), list(prev.get("models", []))
    both = [m for m in cur_models if m in prev_models]
    deltas = []
    for m in both:
        cur_m = agg["per_model"][m]["metrics"]
        prev_m = (prev.get("per_model", {}).get(m) or {}).get("metrics") or {}
        for c, _, higher in METRICS:
            a, b = cur_m.get(c), prev_m.get(c)
            if not a or not b or a.get("mean") is None or b.get("mean") is None:
                continue
            delta = float(a["mean"]) - float(b["mean"])
            overlap = bool(a["low"] <= b["high"] and b["low"] <= a["high"])
            change = "same" if delta == 0 else ("better" if (delta > 0) == higher else "worse")
            deltas.append(
                {
                    "model": m,
                    "metric": c,
                    "current": a["mean"],
                    "previous": b["mean"],
                    "delta": delta,
                    "ci_overlap": overlap,
                    "change": change,
                }
            )
    return {
        "models_both": both,
        "only_current": [m for m in cur_models if m not in prev_models],
        "only_previous": [m for m in prev_models if m not in cur_models],
        "n_images": {"current": agg.get("n_images"), "previous": prev.get("n_images")},
        "deltas": deltas,
    }


def select_examples(
    rows: Iterable[Mapping], model: str | None = None, baselines: Sequence[str] = BASELINES
) -> list[tuple[str, Mapping]]:
    """(label, row) of the best, median and worst image by CIEDE2000 of `model` (default: the
    first real model, else the first model); an image picked twice appears once."""
    rows = list(rows)
    models = model_order(rows, baselines)
    if model is None:
        real = [m for m in models if m not in baselines]
        model = (real or models or [None])[0]
    mine = sorted(
        (r for r in rows if r["model"] == model and math.isfinite(_value(r, "ciede2000"))),
        key=lambda r: _value(r, "ciede2000"),
    )
    if not mine:
        return []
    out, seen = [], set()
    for label, r in (("best", mine[0]), ("median", mine[len(mine) // 2]), ("worst", mine[-1])):
        if _key(r) not in seen:
            seen.add(_key(r))
            out.append((label, r))
    return out


# --- plots -------------------------------------------------------------------------------


def _empty_png(text: str) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return figure_png(fig)


def cmf_plot(agg: Mapping) -> bytes:
    """Every model's mean CMF curve (share of pixels with ab error <= t), AuC in the legend."""
    import matplotlib.pyplot as plt

    per = agg.get("per_model", {})
    curves = [(m, per[m]["cmf"]) for m in agg.get("models", []) if per[m].get("cmf")]
    if not curves:
        return _empty_png("no CMF data")
    baselines = set(agg.get("baselines", []))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    t = AUC_THRESHOLDS
    for m, curve in curves:
        ax.plot(
            t,
            curve,
            linestyle="--" if m in baselines else "-",
            linewidth=1.6,
            label=f"{m} (AuC {curve_auc(curve):.3f})",
        )
    ax.set_xlim(0, int(t[-1]))
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("threshold t on the ab error ||ab − âb||₂")
    ax.set_ylabel("share of pixels with error ≤ t")
    ax.set_title("Cumulative mass function of ab error (mean over images)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(fig)


def delta_e_histogram(rows: Iterable[Mapping], baselines: Sequence[str] = BASELINES) -> bytes:
    """Per-image mean CIEDE2000, one step histogram per model on shared bins."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = list(rows)
    values = {}
    for m in model_order(rows, baselines):
        v = np.array([_value(r, "ciede2000") for r in rows if r["model"] == m], dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            values[m] = v
    if not values:
        return _empty_png("no CIEDE2000 values")
    every = np.concatenate(list(values.values()))
    edges = np.histogram_bin_edges(every, bins=int(np.clip(np.sqrt(every.size) * 2, 5, 40)))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, v in values.items():
        ax.hist(
            v,
            bins=edges,
            histtype="step",
            linewidth=1.6,
            linestyle="--" if m in baselines else "-",
            label=f"{m} (mean {v.mean():.2f}, n={v.size})",
        )
    ax.set_xlabel("mean CIEDE2000 of an image (ΔE00)")
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Per-image colour error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def example_grid(examples: Sequence[Mapping]) -> bytes:
    """One row per example (label, source name), one column per image (gray | models | truth)."""
    import matplotlib.pyplot as plt

    if not examples:
        return _empty_png("no examples")
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


# --- rendering: both formats from one list of blocks -------------------------------------
# ("h", level, text) | ("p", text) | ("ul", [text...]) | ("img", file name, caption)
# | ("table", [header...], [[cell...]...]) with a cell either text or (text, bold)


def _fmt(column: str, v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(float(v)):
        return "—"
    spec = _FORMAT.get(column, ".4g")
    return format(float(v), ("+" if signed else "") + spec)


def _fmt_ci(column: str, entry: Mapping | None, signed: bool = False) -> str:
    if not entry or entry.get("mean") is None:
        return "—"
    return (
        f"{_fmt(column, entry['mean'], signed)} "
        f"[{_fmt(column, entry['low'], signed)}, {_fmt(column, entry['high'], signed)}]"
    )


def _best(agg: Mapping, column: str, higher: bool) -> set[str]:
    means = {
        m: p["metrics"][column]["mean"]
        for m, p in agg["per_model"].items()
        if (p.get("metrics") or {}).get(column)
    }
    if not means:
        return set()
    best = max(means.values()) if higher else min(means.values())
    return {m for m, v in means.items() if math.isclose(v, best, rel_tol=1e-12, abs_tol=0.0)}


def _metric_table(agg: Mapping) -> tuple[list[str], list[list]]:
    cols = visible_metrics(agg)
    header = ["Model", "n"] + [f"{lab} {'↑' if h else '↓'}" for _, lab, h in cols]
    best = {c: _best(agg, c, h) for c, _, h in cols}
    baselines = set(agg.get("baselines", []))
    rows = []
    for m in agg["models"]:
        p = agg["per_model"][m]
        name = f"{m} (baseline)" if m in baselines else m
        cells: list = [name, str(p["n"])]
        for c, _, _ in cols:
            e = p["metrics"].get(c)
            if not e:
                cells.append("—")
                continue
            mean = _fmt(c, e["mean"])
            ci = f"[{_fmt(c, e['low'])}, {_fmt(c, e['high'])}]"
            cells.append((f"{mean}", True, f" {ci}") if m in best[c] else f"{mean} {ci}")
        rows.append(cells)
    return header, rows


def _significance_blocks(agg: Mapping) -> list[tuple]:
    comps = agg.get("comparisons") or []
    pct = f"{round(100 * agg.get('confidence', CONFIDENCE))}%"
    blocks: list[tuple] = [("h", 2, "Significance of differences")]
    if not comps:
        if not [m for m in agg["models"] if m not in agg.get("baselines", [])]:
            blocks.append(("p", "Only baselines were evaluated: nothing to compare."))
        else:
            blocks.append(("p", "No baseline or second model to compare against."))
        return blocks
    blocks.append(
        (
            "p",
            f"Paired bootstrap over the images both models scored: mean of the per-image "
            f"difference (model − reference) with its {pct} CI. The difference is significant "
            f"where the CI excludes 0. Lower is better for CIEDE2000, higher for AuC.",
        )
    )
    header = [
        "Model",
        "Reference",
        "Metric",
        f"Mean difference [{pct} CI]",
        "Pairs",
        "CI excludes 0",
        "Verdict",
    ]
    rows = []
    for c in comps:
        col = c["metric"]
        ref = f"{c['reference']} ({c.get('kind', 'baseline')})"
        excl = {True: "yes", False: "no", None: "—"}[c.get("excludes_zero")]
        verdict = c.get("verdict", "")
        rows.append(
            [
                c["model"],
                ref,
                _LABEL.get(col, col),
                _fmt_ci(col, c, signed=True),
                str(c["n_pairs"]),
                excl,
                (verdict, True) if verdict in ("better", "worse") else verdict,
            ]
        )
    blocks.append(("table", header, rows))
    return blocks


def _compare_blocks(agg: Mapping, compare: Mapping) -> list[tuple]:
    prev_meta = compare.get("meta") or {}
    cmp = compare_runs(agg, compare)
    blocks: list[tuple] = [("h", 2, "Change since the previous run")]
    where = []
    if prev_meta.get("date"):
        where.append(f"dated {prev_meta['date']}")
    if prev_meta.get("data") or prev_meta.get("data_glob"):
        where.append(f"data {_as_text(prev_meta.get('data') or prev_meta.get('data_glob'))}")
    n = cmp["n_images"]
    blocks.append(
        (
            "p",
            "Previous run"
            + (f" ({', '.join(where)})" if where else "")
            + f": {n['previous']} images, this run {n['current']}. Delta = current − previous "
            "mean; 'CIs overlap' says whether the two runs' 95% CIs of the mean overlap "
            "(overlapping CIs: the change may be noise).",
        )
    )
    if cmp["deltas"]:
        header = ["Model", "Metric", "Previous", "Current", "Delta", "CIs overlap", "Change"]
        rows = [
            [
                d["model"],
                _LABEL.get(d["metric"], d["metric"]),
                _fmt(d["metric"], d["previous"]),
                _fmt(d["metric"], d["current"]),
                _fmt(d["metric"], d["delta"], signed=True),
                "yes" if d["ci_overlap"] else "no",
                d["change"] if d["ci_overlap"] else (d["change"], True),
            ]
            for d in cmp["deltas"]
        ]
        blocks.append(("table", header, rows))
    else:
        blocks.append(("p", "No model with metrics in both runs."))
    if cmp["only_current"]:
        blocks.append(("p", "Only in this run: " + ", ".join(cmp["only_current"]) + "."))
    if cmp["only_previous"]:
        blocks.append(("p", "Only in the previous run: " + ", ".join(cmp["only_previous"]) + "."))
    return blocks


def _as_text(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_as_text(x)}" for k, x in v.items())
    return str(v)


def _meta_items(agg: Mapping, meta: Mapping) -> list[str]:
    items = []
    data = meta.get("data", meta.get("data_glob"))
    if data is not None:
        items.append(f"Data: {_as_text(data)}")
    n = meta.get("images", meta.get("n_images", agg.get("n_images")))
    items.append(f"Images: {n}")
    models = meta.get("models") or {}
    if isinstance(models, (list, tuple)):
        models = {
            (x.get("label") or x.get("name")) if isinstance(x, Mapping) else str(x): x
            for x in models
        }
    for m in agg.get("models", []):
        info = models.get(m)
        if m in agg.get("baselines", []):
            desc = (meta.get("baselines") or {}).get(m)
            items.append(f"Model {m}: baseline" + (f" ({desc})" if desc else ""))
            continue
        if isinstance(info, Mapping):
            sha = info.get("weights_sha256") or info.get("sha256") or "unknown"
            rest = {k: v for k, v in info.items() if k not in ("weights_sha256", "sha256")}
            extra = f"; {_as_text(rest)}" if rest else ""
            items.append(f"Model {m}: weights sha256 {sha}{extra}")
        else:
            items.append(f"Model {m}: weights sha256 {info or 'unknown'}")
    if meta.get("settings"):
        items.append(f"Settings: {_as_text(meta['settings'])}")
    shown = {"data", "data_glob", "images", "n_images", "models", "baselines", "settings", "date"}
    for k, v in meta.items():
        if k not in shown:
            items.append(f"{k}: {_as_text(v)}")
    items.append(
        f"Bootstrap: n_boot={agg.get('n_boot')}, seed={agg.get('seed')}, "
        f"{round(100 * agg.get('confidence', CONFIDENCE))}% percentile CIs"
    )
    if meta.get("date"):
        items.append(f"Date: {meta['date']}")
    return items


def _blocks(agg: Mapping, meta: Mapping, compare: Mapping | None) -> list[tuple]:
    real = [m for m in agg["models"] if m not in agg.get("baselines", [])]
    truth = (agg.get("truth") or {}).get("colorfulness")
    hidden = [lab for c, lab, _ in METRICS if c not in {x[0] for x in visible_metrics(agg)}]
    pct = f"{round(100 * agg.get('confidence', CONFIDENCE))}%"
    notes = (
        f"Mean over images with its {pct} percentile bootstrap CI [low, high]; bold: the best "
        "mean per column (↑ higher is better, ↓ lower is better). PSNR is on RGB, per image "
        "then averaged (exact predictions, with infinite PSNR, are left out of its mean); "
        "CIEDE2000 is the per-image mean ΔE00; AuC is the area under the CMF of ab error "
        "(t = 0..150) / 150; |ΔCF| is |colorfulness(prediction) − colorfulness(truth)|."
    )
    if truth:
        notes += f" Ground-truth colorfulness: {_fmt_ci('colorfulness', truth)}."
    if hidden:
        notes += f" Not shown (no value in this run): {', '.join(hidden)}."
    if agg.get("duplicates"):
        notes += f" {agg['duplicates']} duplicate (image, model) rows were ignored."
    header, rows = _metric_table(agg)
    blocks: list[tuple] = [
        ("h", 1, "Colorization evaluation report"),
        (
            "p",
            f"{agg.get('n_images')} images; models: {', '.join(real) or 'none'}; baselines: "
            f"{', '.join(agg.get('baselines', [])) or 'none'}"
            + (f"; {meta['date']}" if meta.get("date") else "")
            + ".",
        ),
        ("h", 2, "Aggregate metrics"),
        ("table", header, rows),
        ("p", notes),
        *_significance_blocks(agg),
        ("h", 2, "Cumulative mass function of ab error"),
        ("img", CMF_PNG, "Mean CMF per model: share of pixels with ab error ≤ t (legend: AuC)."),
        ("h", 2, "Per-image CIEDE2000"),
        ("img", HIST_PNG, "Histogram of each image's mean ΔE00, per model."),
        ("h", 2, "Examples"),
        (
            "img",
            EXAMPLES_PNG,
            "Best, median and worst image (by ΔE00): gray input, each model, ground truth.",
        ),
    ]
    if compare is not None:
        blocks += _compare_blocks(agg, compare)
    blocks += [("h", 2, "Run metadata"), ("ul", _meta_items(agg, meta))]
    return blocks


_NUMERIC = re.compile(r"^[-+−]?\d|^—$")


def _cell_text(cell) -> str:
    return str(cell[0]) if isinstance(cell, tuple) else str(cell)


def _numeric_columns(rows: Sequence[Sequence]) -> list[bool]:
    """Per column: whether every body cell is a number (or "—"), to right-align it."""
    ncols = max((len(r) for r in rows), default=0)
    return [
        bool(rows) and all(_NUMERIC.match(_cell_text(r[j])) for r in rows if j < len(r))
        for j in range(ncols)
    ]


def _md_cell(cell) -> str:
    if isinstance(cell, tuple):
        text = f"**{cell[0]}**" + (cell[2] if len(cell) > 2 else "")
    else:
        text = str(cell)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(agg: Mapping, meta: Mapping, compare: Mapping | None = None) -> str:
    """The report as Markdown; plots are referenced by file name (cmf.png, ...).

    `compare` is a previous run's summary (as `load_summary` returns) or its aggregate.
    """
    out = []
    for b in _blocks(agg, meta, compare):
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})")
        elif kind == "table":
            header, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
            numeric = _numeric_columns(rows) or [False] * len(header)
            lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}
figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}
p,li{font-size:.95em}
""".strip()


def _html_cell(cell, tag: str, numeric: bool = False) -> str:
    if isinstance(cell, tuple):
        text = f"<b>{html.escape(cell[0])}</b>" + html.escape(cell[2] if len(cell) > 2 else "")
    else:
        text = html.escape(str(cell))
    return f'<{tag} class="num">{text}</{tag}>' if numeric else f"<{tag}>{text}</{tag}>"


def render_html(
    agg: Mapping, meta: Mapping, images: Mapping[str, bytes], compare: Mapping | None = None
) -> str:
    """The report as one self-contained HTML page: `images` (file name -> PNG bytes) are
    inlined as base64 data URIs; inline CSS; no external links."""
    out = []
    for b in _blocks(agg, meta, compare):
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(b[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "img":
            data = images.get(b[1])
            if data is None:
                out.append(f"<p><i>{html.escape(b[1])}: not rendered.</i></p>")
                continue
            b64 = base64.b64encode(data).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(b[2])}">'
                f"<figcaption>{html.escape(b[2])}</figcaption></figure>"
            )
        elif kind == "table":
            header, rows = b[1], b[2]
            numeric = _numeric_columns(rows)
            head = "<tr>" + "".join(_html_cell(h, "th") for h in header) + "</tr>"
            body = "".join(
                "<tr>"
                + "".join(_html_cell(c, "td", n) for c, n in zip(r, numeric, strict=True))
                + "</tr>"
                for r in rows
            )
            out.append(f"<table><thead>{head}</thead><tbody>{body}</tbody></table>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>chromabeam evaluation report</title>\n"
        f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n" + "\n".join(out) + "\n</body>\n</html>\n"
    )


# --- files -------------------------------------------------------------------------------


def json_safe(obj: object) -> object:
    """A copy that strict JSON can hold: NaN / inf -> None, numpy scalars and arrays -> Python,
    tuples -> lists, other objects -> str."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return str(obj)


def load_summary(report_dir: str) -> dict:
    """summary.json of an earlier report folder (any fsspec URL)."""
    uri = fileio.join(report_dir, SUMMARY_JSON)
    if not fileio.exists(uri):
        raise FileNotFoundError(
            f"no {SUMMARY_JSON} in {report_dir!r}: pass the output folder of an earlier "
            "`chromabeam evaluate` run (one written with its report)"
        )
    summary = fileio.read_json(uri)
    if not isinstance(summary, dict) or "aggregate" not in summary:
        raise ValueError(f"{uri} is not a chromabeam report summary (no 'aggregate')")
    return summary


def build_report(
    rows: Iterable[Mapping],
    examples: Sequence[Mapping],
    meta: Mapping,
    out_dir: str,
    compare_dir: str | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Aggregate `rows`, render the plots and both reports, write them and summary.json to
    out_dir (fsspec URL) and return the summary {"aggregate", "meta", "compare", "files"}.

    `compare_dir` is an earlier report folder: its summary.json is read (FileNotFoundError if
    it has none) and the change of every metric mean is reported.
    """
    rows = list(rows)
    previous = load_summary(compare_dir) if compare_dir else None
    meta = dict(meta)
    meta.setdefault(
        "date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    agg = json_safe(aggregate(rows, n_boot=n_boot, seed=seed))
    images = {
        CMF_PNG: cmf_plot(agg),
        HIST_PNG: delta_e_histogram(rows),
        EXAMPLES_PNG: example_grid(examples),
    }
    md = render_markdown(agg, meta, previous)
    page = render_html(agg, meta, images, previous)
    for name, data in images.items():
        fileio.write_bytes(fileio.join(out_dir, name), data)
    fileio.write_bytes(fileio.join(out_dir, REPORT_MD), md.encode("utf-8"))
    fileio.write_bytes(fileio.join(out_dir, REPORT_HTML), page.encode("utf-8"))
    comparison = None
    if previous is not None:
        comparison = {"dir": compare_dir, **compare_runs(agg, previous)}
    summary = json_safe(
        {
            "aggregate": agg,
            "meta": meta,
            "compare": comparison,
            "files": [REPORT_MD, REPORT_HTML, *images, SUMMARY_JSON],
        }
    )
    fileio.write_json(fileio.join(out_dir, SUMMARY_JSON), summary)
    log.info(
        "report written to %s (%d models, %d images)", out_dir, len(agg["models"]), agg["n_images"]
    )
    return summary
