"""The `evaluate` report: aggregate per-(image, model) metrics, prepare tables and figures, and
render report.md / report.html from the Jinja2 templates in `transforms/templates/`.

Input rows are the `evaluate` job's metrics rows: the columns of `schema.METRICS_SCHEMA` plus
`cmf`, the image's cumulative mass function of ab error at t = 0..150 (151 floats; a row
without it is left out of the mean CMF curve only). Missing values (None) count as NaN.

- `aggregate` gives, per model, the image count, each metric's mean with a 95% percentile
  bootstrap CI over images (`transforms.stats`; non-finite values such as the infinite PSNR of
  an exact prediction are dropped, a column with no finite value gives None), the mean CMF
  curve (each image weighted equally), and paired bootstrap CIs of the per-image differences
  (matched by key) of each real model against each baseline and against the first real model,
  for CIEDE2000 and AuC.
- `cmf_plot`, `delta_e_histogram`, `example_grid` return PNG bytes (`transforms.plots`).
- `report_context` turns an aggregate into what the templates show (formatted tables, file
  names, metadata lines); `render_markdown` / `render_html` render it (`report.md.j2`,
  `report.html.j2`; the Markdown references the PNG files by name, the HTML inlines them as
  base64 data URIs: one self-contained file). The look lives in the templates, the numbers here.
- `build_report` writes report.md, report.html, cmf.png, delta_e_hist.png, examples.png and
  summary.json (aggregate + meta [+ comparison], strict JSON: NaN and inf -> null) to any fsspec
  URL; `load_summary` reads summary.json back (e.g. a previous run to compare against).

Reproducible: the result does not depend on the order the rows arrive in. Every statistic
works on values sorted by image key with a seeded PCG64 generator; of duplicated (model, key)
rows the one with the smallest canonical JSON is kept. Models appear in the order `models`
gives (the command line's), then any others by name, then the baselines ("no colour",
"constant prior").
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from transforms import fileio, plots, stats
from transforms.metrics import AUC_THRESHOLDS

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
CONFIDENCE = stats.CONFIDENCE

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
CMF_PNG = "cmf.png"
HIST_PNG = "delta_e_hist.png"
EXAMPLES_PNG = "examples.png"
SUMMARY_JSON = "summary.json"
TEMPLATE_MD = "report.md.j2"
TEMPLATE_HTML = "report.html.j2"

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


def model_order(
    rows: Iterable[Mapping],
    models: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
) -> list[str]:
    """The models present in `rows`: those of `models` in its order, then the other real
    models by name, then the baselines in `baselines`' order (also any not in `models`)."""
    present = {str(r["model"]) for r in rows}
    given = [m for m in dict.fromkeys(models or []) if m in present and m not in baselines]
    rest = sorted(present - set(given) - set(baselines))
    return given + rest + [b for b in baselines if b in present]


def _canonical(row: Mapping) -> str:
    return json.dumps(json_safe(row), sort_keys=True)


def _index(rows: Iterable[Mapping], warn: bool = True) -> tuple[dict[str, dict[str, Mapping]], int]:
    """{model: {key: row}} + the number of duplicated (model, key) rows left out; of
    duplicates the row with the smallest canonical JSON is kept (independent of order)."""
    out: dict[str, dict[str, Mapping]] = {}
    dups = 0
    for r in rows:
        per = out.setdefault(str(r["model"]), {})
        k = _key(r)
        if k in per:
            dups += 1
            if _canonical(r) < _canonical(per[k]):
                per[k] = r
            continue
        per[k] = r
    if dups and warn:
        log.warning("%d duplicate (model, key) metrics rows ignored", dups)
    return out, dups


def _column(per: Mapping[str, Mapping], column: str) -> dict[str, float]:
    return {k: _value(r, column) for k, r in per.items()}


def _mean_cmf(per: Mapping[str, Mapping]) -> list[float] | None:
    curves = []
    for k in sorted(per):
        c = per[k].get("cmf")
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
    d = stats.paired_diff(
        _column(index.get(model, {}), column),
        _column(index.get(reference, {}), column),
        n_boot=n_boot,
        confidence=CONFIDENCE,
        seed=seed,
    )
    return {
        "model": model,
        "reference": reference,
        "metric": column,
        **d,
        "verdict": stats.verdict(d, _HIGHER.get(column, True)),
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
    models: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
) -> dict:
    """Per-model summary of metrics rows (see the module docstring), plain Python values with
    None where a value is undefined (strict-JSON ready); `models`: the order to show them in.

    {"models": [...], "baselines": [...], "n_images", "n_rows", "duplicates",
     "metrics": [{"column", "label", "higher_is_better"}...], "n_boot", "seed", "confidence",
     "per_model": {model: {"n", "metrics": {column: {"mean","low","high","n"} | None},
                           "cmf": [151 floats] | None, "cmf_auc": float | None}},
     "truth": {"colorfulness": {...} | None},
     "comparisons": [paired_diff dicts + "kind": "baseline" | "first model"]}
    """
    rows = list(rows)
    index, dups = _index(rows)
    order = model_order(rows, models, baselines)
    per_model = {}
    for m in order:
        curve = _mean_cmf(index[m])
        per_model[m] = {
            "n": len(index[m]),
            "metrics": {
                c: stats.keyed_ci(_column(index[m], c), n_boot, CONFIDENCE, seed)
                for c, _, _ in METRICS
            },
            "cmf": curve,
            "cmf_auc": curve_auc(curve),
        }
    truth_by_key: dict[str, float] = {}  # an image's truth: the first finite one, model order
    for m in order:
        for k in sorted(index[m]):
            v = _value(index[m][k], "colorfulness_truth")
            if k not in truth_by_key or not math.isfinite(truth_by_key[k]):
                truth_by_key[k] = v
    real = [m for m in order if m not in baselines]
    present_baselines = [m for m in order if m in baselines]
    comparisons = []
    for m in real:
        refs = [(b, "baseline") for b in present_baselines]
        if m != real[0]:
            refs.append((real[0], "first model"))
        for ref, kind in refs:
            for c in PAIRED_METRICS:
                comparisons.append({**_paired(index, m, ref, c, n_boot, seed), "kind": kind})
    return {
        "models": order,
        "baselines": present_baselines,
        "n_images": len({_key(r) for r in rows}),
        "n_rows": len(rows),
        "duplicates": dups,
        "metrics": [{"column": c, "label": lab, "higher_is_better": h} for c, lab, h in METRICS],
        "n_boot": n_boot,
        "seed": seed,
        "confidence": CONFIDENCE,
        "per_model": per_model,
        "truth": {"colorfulness": stats.keyed_ci(truth_by_key, n_boot, CONFIDENCE, seed)},
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
    rows: Iterable[Mapping],
    model: str | None = None,
    baselines: Sequence[str] = BASELINES,
    *,
    models: Sequence[str] | None = None,
) -> list[tuple[str, Mapping]]:
    """(label, row) of the best, median and worst image by CIEDE2000 of `model` (default: the
    first real model in `models` order, else the first model); ties go by key, and an image
    picked twice appears once."""
    rows = list(rows)
    order = model_order(rows, models, baselines)
    if model is None:
        real = [m for m in order if m not in baselines]
        model = (real or order or [None])[0]
    index, _ = _index((r for r in rows if r["model"] == model), warn=False)
    mine = sorted(
        (r for r in index.get(model, {}).values() if math.isfinite(_value(r, "ciede2000"))),
        key=lambda r: (_value(r, "ciede2000"), _key(r)),
    )
    if not mine:
        return []
    out, seen = [], set()
    for label, r in (("best", mine[0]), ("median", mine[len(mine) // 2]), ("worst", mine[-1])):
        if _key(r) not in seen:
            seen.add(_key(r))
            out.append((label, r))
    return out


# --- figures -----------------------------------------------------------------------------


def cmf_plot(agg: Mapping) -> bytes:
    """Every model's mean CMF curve (share of pixels with ab error <= t), AuC in the legend."""
    per = agg.get("per_model", {})
    curves = {m: per[m]["cmf"] for m in agg.get("models", []) if per[m].get("cmf")}
    auc = {m: curve_auc(c) for m, c in curves.items()}
    return plots.cmf_png(AUC_THRESHOLDS, curves, auc, set(agg.get("baselines", [])))


def delta_e_histogram(
    rows: Iterable[Mapping],
    baselines: Sequence[str] = BASELINES,
    *,
    models: Sequence[str] | None = None,
) -> bytes:
    """Per-image mean CIEDE2000, one step histogram per model on shared bins."""
    rows = list(rows)
    index, _ = _index(rows, warn=False)
    values = {}
    for m in model_order(rows, models, baselines):
        v = np.array([_value(index[m][k], "ciede2000") for k in sorted(index[m])])
        values[m] = v[np.isfinite(v)]
    return plots.delta_e_png(values, set(baselines))


def example_grid(examples: Sequence[Mapping]) -> bytes:
    """One row per example (label, source name), one column per image (gray | models | truth)."""
    return plots.examples_png(examples)


# --- what the templates show -------------------------------------------------------------
# A table is {"header": [str], "rows": [[cell]], "numeric": [bool per column]}; a cell is a
# string or {"text", "bold", "ci"} (a value with its CI, shown smaller in the HTML).


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


def _ci_cell(column: str, entry: Mapping | None, bold: bool = False, signed: bool = False):
    if not entry or entry.get("mean") is None:
        return "—"
    return {
        "text": _fmt(column, entry["mean"], signed),
        "bold": bold,
        "ci": f"[{_fmt(column, entry['low'], signed)}, {_fmt(column, entry['high'], signed)}]",
    }


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


_NUMERIC = re.compile(r"^[-+−]?\d|^—$")


def _cell_text(cell) -> str:
    return str(cell["text"]) if isinstance(cell, Mapping) else str(cell)


def _table(header: list[str], rows: list[list]) -> dict:
    """A table with, per column, whether every body cell is a number (or "—")."""
    numeric = [
        bool(rows) and all(_NUMERIC.match(_cell_text(r[j])) for r in rows)
        for j in range(len(header))
    ]
    return {"header": header, "rows": rows, "numeric": numeric}


def _metric_table(agg: Mapping) -> dict:
    cols = visible_metrics(agg)
    header = ["Model", "n"] + [f"{lab} {'↑' if h else '↓'}" for _, lab, h in cols]
    best = {c: _best(agg, c, h) for c, _, h in cols}
    baselines = set(agg.get("baselines", []))
    rows = []
    for m in agg["models"]:
        p = agg["per_model"][m]
        cells: list = [f"{m} (baseline)" if m in baselines else m, str(p["n"])]
        cells += [_ci_cell(c, p["metrics"].get(c), m in best[c]) for c, _, _ in cols]
        rows.append(cells)
    return _table(header, rows)


def _significance_table(agg: Mapping) -> dict | None:
    comps = agg.get("comparisons") or []
    if not comps:
        return None
    pct = f"{round(100 * agg.get('confidence', CONFIDENCE))}%"
    header = ["Model", "Reference", "Metric", f"Mean difference [{pct} CI]", "Pairs"]
    header += ["CI excludes 0", "Verdict"]
    rows = []
    for c in comps:
        col = c["metric"]
        verdict = c.get("verdict", "")
        rows.append(
            [
                c["model"],
                f"{c['reference']} ({c.get('kind', 'baseline')})",
                _LABEL.get(col, col),
                _ci_cell(col, c, signed=True),
                str(c["n_pairs"]),
                {True: "yes", False: "no", None: "—"}[c.get("excludes_zero")],
                {"text": verdict, "bold": verdict in ("better", "worse"), "ci": None},
            ]
        )
    return _table(header, rows)


def _as_text(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_as_text(x)}" for k, x in v.items())
    return str(v)


COMPARED_SETTINGS = ("size", "data")  # run settings a comparison names when they differ


def compare_caveats(meta: Mapping, prev_meta: Mapping) -> list[str]:
    """The run settings (COMPARED_SETTINGS, and each model's settings in both runs) that
    differ between this run's meta and a previous one's, as 'size: 256 then, full now'; the
    deltas of such runs mix the change of the model with that of the measure."""
    out = [
        f"{k}: {_as_text(prev_meta[k])} then, {_as_text(meta[k])} now"
        for k in COMPARED_SETTINGS
        if k in meta and k in prev_meta and meta[k] != prev_meta[k]
    ]
    now, then = meta.get("models") or {}, prev_meta.get("models") or {}
    for label in [m for m in now if m in then]:
        if now[label] != then[label]:
            keys = sorted(
                k for k in {*now[label], *then[label]} if now[label].get(k) != then[label].get(k)
            )
            out.append(f"model {label}: other {', '.join(keys)}")
    return out


def _compare_context(agg: Mapping, compare: Mapping, meta: Mapping | None = None) -> dict:
    prev_meta = compare.get("meta") or {}
    cmp = compare_runs(agg, compare)
    data = prev_meta.get("data") or prev_meta.get("data_glob")
    table = None
    if cmp["deltas"]:
        header = ["Model", "Metric", "Previous", "Current", "Delta", "CIs overlap", "Change"]
        table = _table(
            header,
            [
                [
                    d["model"],
                    _LABEL.get(d["metric"], d["metric"]),
                    _fmt(d["metric"], d["previous"]),
                    _fmt(d["metric"], d["current"]),
                    _fmt(d["metric"], d["delta"], signed=True),
                    "yes" if d["ci_overlap"] else "no",
                    {"text": d["change"], "bold": not d["ci_overlap"], "ci": None},
                ]
                for d in cmp["deltas"]
            ],
        )
    return {
        "date": prev_meta.get("date"),
        "data": _as_text(data) if data else None,
        "n_previous": cmp["n_images"]["previous"],
        "n_current": cmp["n_images"]["current"],
        "table": table,
        "only_current": cmp["only_current"],
        "only_previous": cmp["only_previous"],
        "caveats": compare_caveats(meta or {}, prev_meta),
    }


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
    shown |= {"left_out"}  # said in the intro sentence (report_context)
    for k, v in meta.items():
        if k not in shown:
            items.append(f"{k}: {_as_text(v)}")
    items.append(
        f"Bootstrap: n_boot={agg.get('n_boot')}, seed={agg.get('seed')}, "
        f"{round(100 * agg.get('confidence', CONFIDENCE))}% percentile CIs "
        "(PCG64, values sorted by image key)"
    )
    if meta.get("date"):
        items.append(f"Date: {meta['date']}")
    return items


def report_context(agg: Mapping, meta: Mapping, compare: Mapping | None = None) -> dict:
    """Everything the templates show, formatted (strings, tables); no figures' bytes.

    `compare` is a previous run's summary (as `load_summary` returns) or its aggregate.
    """
    visible = {c for c, _, _ in visible_metrics(agg)}
    truth = (agg.get("truth") or {}).get("colorfulness")
    return {
        "n_images": agg.get("n_images"),
        "left_out": ", ".join(f"{n} {o}" for o, n in (meta.get("left_out") or {}).items()),
        "models": [m for m in agg["models"] if m not in agg.get("baselines", [])],
        "baselines": list(agg.get("baselines", [])),
        "date": meta.get("date"),
        "confidence_pct": f"{round(100 * agg.get('confidence', CONFIDENCE))}%",
        "metrics": _metric_table(agg),
        "truth_colorfulness": _fmt_ci("colorfulness", truth) if truth else None,
        "hidden_metrics": [lab for c, lab, _ in METRICS if c not in visible],
        "duplicates": agg.get("duplicates") or 0,
        "significance": _significance_table(agg),
        "files": {"cmf": CMF_PNG, "hist": HIST_PNG, "examples": EXAMPLES_PNG},
        "compare": _compare_context(agg, compare, meta) if compare is not None else None,
        "meta": _meta_items(agg, meta),
    }


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@functools.lru_cache(maxsize=2)
def _environment(html: bool):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("transforms", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_escape
    return env


def render_markdown(agg: Mapping, meta: Mapping, compare: Mapping | None = None) -> str:
    """The report as Markdown (`report.md.j2`); plots are referenced by file name (cmf.png, ...).

    `compare` is a previous run's summary (as `load_summary` returns) or its aggregate.
    """
    template = _environment(False).get_template(TEMPLATE_MD)
    return template.render(report=report_context(agg, meta, compare))


def render_html(
    agg: Mapping, meta: Mapping, images: Mapping[str, bytes], compare: Mapping | None = None
) -> str:
    """The report as one self-contained HTML page (`report.html.j2`): `images` (file name ->
    PNG bytes) are inlined as base64 data URIs; inline CSS; no external links."""
    uris = {
        name: "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        for name, data in images.items()
    }
    template = _environment(True).get_template(TEMPLATE_HTML)
    return template.render(report=report_context(agg, meta, compare), images=uris)


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
    models: Sequence[str] | None = None,
) -> dict:
    """Aggregate `rows`, render the plots and both reports, write them and summary.json to
    out_dir (fsspec URL) and return the summary {"aggregate", "meta", "compare", "files"}.

    `models` is the order to show the models in (the command line's). `compare_dir` is an
    earlier report folder: its summary.json is read (FileNotFoundError if it has none) and the
    change of every metric mean is reported.
    """
    rows = list(rows)
    previous = load_summary(compare_dir) if compare_dir else None
    meta = dict(meta)
    meta.setdefault(
        "date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    agg = json_safe(aggregate(rows, n_boot=n_boot, seed=seed, models=models))
    images = {
        CMF_PNG: cmf_plot(agg),
        HIST_PNG: delta_e_histogram(rows, models=agg["models"]),
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
        caveats = compare_caveats(meta, previous.get("meta") or {})
        for line in caveats:
            log.warning("--compare %s: the runs differ in %s", compare_dir, line)
        comparison = {"dir": compare_dir, **compare_runs(agg, previous), "caveats": caveats}
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
