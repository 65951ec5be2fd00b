"""Tests for transforms.report: aggregation, significance, rendering, files and comparison."""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np
import pytest

from transforms.metrics import AUC_THRESHOLDS
from transforms.report import (
    CMF_PNG,
    EXAMPLES_PNG,
    HIST_PNG,
    METRICS,
    REPORT_HTML,
    REPORT_MD,
    SUMMARY_JSON,
    aggregate,
    build_report,
    cmf_plot,
    compare_runs,
    delta_e_histogram,
    example_grid,
    load_summary,
    paired_diff,
    render_html,
    render_markdown,
    select_examples,
)

PNG_MAGIC = b"\x89PNG"
MODEL, BASE = "eccv16-small", "no colour"
N_BOOT = 200


def _cmf(scale: float) -> list[float]:
    return np.clip(AUC_THRESHOLDS / scale, 0.0, 1.0).tolist()


def _row(key: str, model: str, **values) -> dict:
    row = {
        "key": key,
        "source_uri": f"memory://data/{key}.png",
        "model": model,
        "width": 8,
        "height": 6,
        "psnr": 20.0,
        "ssim": 0.9,
        "ciede2000": 10.0,
        "auc": 0.9,
        "auc_rebalanced": 0.8,
        "colorfulness": 30.0,
        "colorfulness_truth": 40.0,
        "delta_colorfulness": 10.0,
        "bits_per_dim": math.nan,
        "cmf": _cmf(50.0),
    }
    row.update(values)
    return row


def _rows(model_de=(10.0, 12.0, 14.0), base_de=(20.0, 21.0, 23.0), model=MODEL) -> list[dict]:
    """Baseline rows first: the aggregate must still list the real model first."""
    rows = [
        _row(
            f"k{i}",
            BASE,
            ciede2000=d,
            psnr=18.0 + i,
            auc=0.5,
            colorfulness=0.0,
            delta_colorfulness=40.0,
            cmf=_cmf(100.0),
        )
        for i, d in enumerate(base_de)
    ]
    rows += [
        _row(f"k{i}", model, ciede2000=d, psnr=20.0 + 2 * i, auc=0.9 - 0.1 * i)
        for i, d in enumerate(model_de)
    ]
    return rows


@pytest.fixture(scope="module")
def agg() -> dict:
    return aggregate(_rows(), n_boot=N_BOOT)


META = {
    "data": ["memory://data/*.png"],
    "images": 3,
    "models": {MODEL: {"name": "eccv16", "weights_sha256": "ab" * 32, "temperature": 0.38}},
    "baselines": {BASE: "a = b = 0"},
    "date": "2025-01-01 00:00:00 UTC",
}


def test_aggregate_means_and_cis(agg):
    assert agg["models"] == [MODEL, BASE]
    assert agg["baselines"] == [BASE]
    assert agg["n_images"] == 3
    m = agg["per_model"][MODEL]
    assert m["n"] == 3
    expected = {"ciede2000": 12.0, "psnr": 22.0, "auc": 0.8, "ssim": 0.9}
    for col, mean in expected.items():
        e = m["metrics"][col]
        assert e["mean"] == pytest.approx(mean)
        assert e["low"] <= e["mean"] <= e["high"]
        assert e["n"] == 3
    assert agg["per_model"][BASE]["metrics"]["ciede2000"]["mean"] == pytest.approx(64.0 / 3)
    assert len(m["cmf"]) == 151
    assert m["cmf"] == pytest.approx(_cmf(50.0))
    assert m["cmf_auc"] == pytest.approx(1.0 - 25.0 / 150.0)  # ramp to 1 at t = 50
    assert agg["truth"]["colorfulness"]["mean"] == pytest.approx(40.0)


def test_nan_only_column_is_none(agg):
    for model in agg["models"]:
        assert agg["per_model"][model]["metrics"]["bits_per_dim"] is None
    nulls = [dict(r, auc_rebalanced=None) for r in _rows()]  # Parquet nulls arrive as None
    assert aggregate(nulls, n_boot=N_BOOT)["per_model"][MODEL]["metrics"]["auc_rebalanced"] is None


def test_paired_diff_against_itself_is_zero():
    rows = _rows()
    d = paired_diff(rows, MODEL, MODEL, "ciede2000", n_boot=N_BOOT)
    assert (d["mean"], d["low"], d["high"]) == (0.0, 0.0, 0.0)
    assert d["n_pairs"] == 3 and d["excludes_zero"] is False
    # a second model with identical values: its difference to the first model is zero too
    copy = [dict(r, model="copy") for r in rows if r["model"] == MODEL]
    agg = aggregate(rows + copy, n_boot=N_BOOT, models=[MODEL, "copy"])
    vs_first = [
        c for c in agg["comparisons"] if c["model"] == "copy" and c["kind"] == "first model"
    ]
    assert {c["metric"] for c in vs_first} == {"ciede2000", "auc"}
    for c in vs_first:
        assert c["mean"] == 0.0 and c["low"] == 0.0 and c["high"] == 0.0
        assert c["verdict"] == "no significant difference"


def test_paired_diff_against_baseline_is_significant(agg):
    c = next(
        c
        for c in agg["comparisons"]
        if c["model"] == MODEL and c["reference"] == BASE and c["metric"] == "ciede2000"
    )
    assert c["mean"] == pytest.approx(12.0 - 64.0 / 3)
    assert c["high"] < 0 and c["excludes_zero"] is True and c["verdict"] == "better"


def _table_row(md: str, name: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {name}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_markdown_table_and_bold_best(agg):
    md = render_markdown(agg, META)
    header = next(x for x in md.splitlines() if x.startswith("| Model | n |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert any(c.startswith("PSNR") for c in cells) and any(
        c.startswith("CIEDE2000") for c in cells
    )
    assert not any(c.startswith("bits/dim") for c in cells)  # no finite value: column hidden
    for model in agg["models"]:
        assert model in md
    col = next(i for i, c in enumerate(cells) if c.startswith("CIEDE2000"))
    assert _table_row(md, MODEL)[col].startswith("**12.00**")
    assert "**" not in _table_row(md, BASE)[col]
    assert "ab" * 32 in md  # weights sha256 in the metadata
    for name in (CMF_PNG, HIST_PNG, EXAMPLES_PNG):
        assert f"({name})" in md


def test_bits_per_dim_shown_when_finite():
    rows = [dict(r, bits_per_dim=2.5) if r["model"] == MODEL else r for r in _rows()]
    md = render_markdown(aggregate(rows, n_boot=N_BOOT), META)
    assert "bits/dim" in md and "**2.500**" in md


def test_html_self_contained(agg):
    page = render_html(agg, META, {CMF_PNG: cmf_plot(agg)})
    assert "data:image/png;base64," in page
    links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page)
    assert links and all(x.startswith("data:") for x in links)
    assert "<link" not in page and "<script" not in page
    assert MODEL in page and "<b>12.00</b>" in page


def _examples() -> list[dict]:
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)  # noqa: E731
    return [
        {
            "label": label,
            "key": f"k{i}",
            "source_uri": f"memory://data/k{i}.png",
            "images": {
                "gray input": rng.integers(0, 256, (12, 16), dtype=np.uint8),
                MODEL: img(),
                BASE: img(),
                "ground truth": img(),
            },
            "ciede2000": {MODEL: 10.0 + i, BASE: 20.0 + i},
        }
        for i, label in enumerate(("best", "median", "worst"))
    ]


def test_plots_return_png(agg):
    assert cmf_plot(agg).startswith(PNG_MAGIC)
    assert delta_e_histogram(_rows()).startswith(PNG_MAGIC)
    assert example_grid(_examples()).startswith(PNG_MAGIC)
    assert example_grid([]).startswith(PNG_MAGIC)


def test_build_report_writes_files_and_compares(tmp_path):
    prev_dir, cur_dir = str(tmp_path / "prev"), str(tmp_path / "cur")
    # previous run: the model was worse (higher CIEDE2000) and an extra model existed
    old = _rows(model_de=(15.0, 17.0, 19.0)) + [
        dict(r, model="retired") for r in _rows() if r["model"] == MODEL
    ]
    old[0]["psnr"] = math.nan  # NaN must become null in summary.json
    build_report(old, [], META, prev_dir, n_boot=N_BOOT)
    summary = build_report(
        _rows(),
        _examples(),
        dict(META, threshold=np.float32(0.5)),
        cur_dir,
        prev_dir,
        n_boot=N_BOOT,
    )
    for name in (REPORT_MD, REPORT_HTML, CMF_PNG, HIST_PNG, EXAMPLES_PNG, SUMMARY_JSON):
        assert (tmp_path / "cur" / name).is_file(), name
    for name in (CMF_PNG, HIST_PNG, EXAMPLES_PNG):
        assert (tmp_path / "cur" / name).read_bytes().startswith(PNG_MAGIC)

    def no_constants(x):
        raise AssertionError(f"non-strict JSON constant {x}")

    parsed = json.loads((tmp_path / "cur" / SUMMARY_JSON).read_text(), parse_constant=no_constants)
    assert parsed["aggregate"]["models"] == [MODEL, BASE]
    assert parsed["meta"]["threshold"] == 0.5
    assert load_summary(cur_dir)["aggregate"] == parsed["aggregate"]
    assert summary["aggregate"] == parsed["aggregate"]

    delta = next(
        d for d in parsed["compare"]["deltas"] if d["model"] == MODEL and d["metric"] == "ciede2000"
    )
    assert delta["delta"] == pytest.approx(12.0 - 17.0)
    assert delta["change"] == "better"
    assert parsed["compare"]["only_previous"] == ["retired"]
    assert parsed["compare"]["caveats"] == []  # the same settings: nothing to warn about
    md = (tmp_path / "cur" / REPORT_MD).read_text()
    assert "Change since the previous run" in md and "-5.00" in md and "retired" in md
    assert "Change since the previous run" in (tmp_path / "cur" / REPORT_HTML).read_text()


def test_compare_caveats_name_the_settings_that_differ():
    from transforms.report import compare_caveats

    then = {"size": 256, "data": ["kodak/*.png"], "models": {"m": {"render_size": 128, "T": 0.4}}}
    now = {"size": "full", "data": ["kodak/*.png"], "models": {"m": {"render_size": 128, "T": 0.7}}}
    assert compare_caveats(now, then) == ["size: 256 then, full now", "model m: other T"]
    assert compare_caveats(then, then) == []
    assert compare_caveats({"size": 256}, {}) == []  # an older summary without the key


def test_compare_runs_sign_and_overlap(agg):
    worse = aggregate(_rows(model_de=(30.0, 31.0, 32.0)), n_boot=N_BOOT)
    cmp = compare_runs(worse, {"aggregate": agg})
    d = next(x for x in cmp["deltas"] if x["model"] == MODEL and x["metric"] == "ciede2000")
    assert d["delta"] == pytest.approx(31.0 - 12.0)
    assert d["change"] == "worse" and d["ci_overlap"] is False
    same = next(x for x in cmp["deltas"] if x["model"] == BASE and x["metric"] == "ciede2000")
    assert same["delta"] == 0.0 and same["ci_overlap"] is True
    assert cmp["only_current"] == [] and cmp["only_previous"] == []


def test_missing_compare_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        build_report(_rows(), [], META, str(tmp_path / "out"), str(tmp_path / "nothing"))
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_select_examples_best_median_worst():
    picks = select_examples(_rows())
    assert [(label, r["key"]) for label, r in picks] == [
        ("best", "k0"),
        ("median", "k1"),
        ("worst", "k2"),
    ]


def test_metrics_list_directions():
    direction = {c: h for c, _, h in METRICS}
    assert direction["ciede2000"] is False and direction["delta_colorfulness"] is False
    assert direction["bits_per_dim"] is False and direction["psnr"] is True


# --- order of models, reproducibility, templates ----------------------------------------


def test_models_in_the_given_order_then_baselines():
    rows = _rows() + [dict(r, model="zeta") for r in _rows() if r["model"] == MODEL]
    rows += [dict(r, model="constant prior") for r in _rows() if r["model"] == BASE]
    rows += [dict(r, model="alpha") for r in _rows() if r["model"] == MODEL]
    random.Random(0).shuffle(rows)
    agg = aggregate(rows, n_boot=N_BOOT, models=["zeta", MODEL])
    # given order, then the others by name, then the baselines in their fixed order
    assert agg["models"] == ["zeta", MODEL, "alpha", BASE, "constant prior"]
    assert agg["baselines"] == [BASE, "constant prior"]
    firsts = {c["reference"] for c in agg["comparisons"] if c["kind"] == "first model"}
    assert firsts == {"zeta"}
    md = render_markdown(agg, META)
    table = md.split("## Aggregate metrics")[1].split("\n\n")[1].splitlines()[2:]
    names = [x.split("|")[1].strip() for x in table]
    assert names == ["zeta", MODEL, "alpha", f"{BASE} (baseline)", "constant prior (baseline)"]


def _random_rows(n: int = 40, seed: int = 0) -> list[dict]:
    """Rows of 3 models over n images with random metric values (and one duplicate pair)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in (MODEL, "regression", BASE):
        for i in range(n):
            rows.append(
                _row(
                    f"img{i:03d}",
                    model,
                    ciede2000=float(rng.gamma(4.0, 3.0)),
                    psnr=float(rng.normal(23, 2)) if i else math.inf,  # an exact prediction
                    auc=float(rng.uniform(0.8, 0.95)),
                    colorfulness=float(rng.uniform(0, 40)),
                    colorfulness_truth=float(rng.uniform(20, 40)),
                    cmf=_cmf(float(rng.uniform(30, 90))),
                )
            )
    rows.append(dict(rows[5], ciede2000=99.0))  # a duplicated (model, key) with other values
    return rows


def _without_run_times(summary: dict) -> dict:
    meta = {k: v for k, v in summary["meta"].items() if k not in ("date", "seconds")}
    return {**summary, "meta": meta}


def test_report_reproduces_whatever_the_row_order(tmp_path):
    rows = _random_rows()
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    assert shuffled != rows
    order = [MODEL, "regression"]
    build_report(rows, [], dict(META, seconds=12.3), str(tmp_path / "a"), n_boot=300, models=order)
    meta_b = dict(META, date="2025-06-30 12:00:00 UTC", seconds=45.6)
    build_report(shuffled, [], meta_b, str(tmp_path / "b"), n_boot=300, models=order)
    a = json.loads((tmp_path / "a" / SUMMARY_JSON).read_text())
    b = json.loads((tmp_path / "b" / SUMMARY_JSON).read_text())
    assert a["meta"]["seconds"] != b["meta"]["seconds"]
    assert _without_run_times(a) == _without_run_times(b)  # to the last digit
    assert a["aggregate"]["models"] == [MODEL, "regression", BASE]
    assert a["aggregate"]["duplicates"] == 1
    md_a = (tmp_path / "a" / REPORT_MD).read_text().splitlines()
    md_b = (tmp_path / "b" / REPORT_MD).read_text().splitlines()
    differ = [(x, y) for x, y in zip(md_a, md_b, strict=True) if x != y]
    assert len(md_a) > 30 and all("2025-" in x or "seconds" in x for pair in differ for x in pair)
    # the same meta gives the same report.md, byte for byte
    assert render_markdown(aggregate(rows, 300, models=order), META) == render_markdown(
        aggregate(shuffled, 300, models=order), META
    )


def test_duplicate_rows_resolved_independently_of_order():
    rows = _rows()
    dup = dict(rows[-1], ciede2000=50.0)
    one = aggregate(rows + [dup], n_boot=N_BOOT)
    other = aggregate([dup] + rows, n_boot=N_BOOT)
    assert one == other and one["duplicates"] == 1


def test_select_examples_ties_go_by_key():
    rows = [_row(k, MODEL, ciede2000=5.0) for k in ("k3", "k1", "k2")]
    picks = select_examples(rows)
    assert [(label, r["key"]) for label, r in picks] == [
        ("best", "k1"),
        ("median", "k2"),
        ("worst", "k3"),
    ]
    assert select_examples(list(reversed(rows))) == picks


def test_html_tables_fit_their_column(agg):
    page = render_html(agg, META, {})
    # every table sits in a horizontally scrolling container; CIs in their own smaller span;
    # header and text cells may wrap (only number cells keep to one line)
    assert page.count('<div class="table-wrap">') == page.count("<table") >= 2
    assert re.search(r"\.table-wrap\{[^}]*overflow-x:auto", page)
    assert re.search(r"\.ci\{[^}]*display:block[^}]*font-size:\.8em", page)
    assert '<b>12.00</b><span class="ci">[' in page
    cell_rule = re.search(r"th,td\{([^}]*)\}", page).group(1)
    assert "nowrap" not in cell_rule


def test_markup_in_values_is_escaped_in_html_and_markdown(agg):
    meta = dict(META, note="<script>x</script> | y")
    page = render_html(agg, meta, {})
    assert "<script" not in page and "&lt;script&gt;" in page
    rows = [dict(r, model="a|b") for r in _rows() if r["model"] == MODEL]
    md = render_markdown(aggregate(rows, n_boot=N_BOOT), META)
    assert "| a\\|b |" in md


def test_templates_are_files_of_the_package():
    from pathlib import Path

    import transforms

    folder = Path(transforms.__file__).parent / "templates"
    assert {p.name for p in folder.glob("*.j2")} >= {"report.md.j2", "report.html.j2"}


def _hint_rows(points: list[int]) -> list[dict]:
    """Hint-sweep rows (evaluate --hints) of two images for a model and the IDW baseline."""
    from transforms.hint_report import METRICS

    rows = []
    for label, base in (("guided", 10.0), ("IDW", 12.0)):
        for n in points:
            for k in range(2):
                value = base - 0.5 * n + k
                rows.append({"model": label, "points": n, **{m: value for m, _, _ in METRICS}})
    return rows


def test_hint_report_targets_measured_and_not(tmp_path):
    """With 0 and 10 points the targets are numbers (hand-computed: ΔE00 at 10 points 5.5 vs
    IDW's 7.5); a sweep without 10 points writes null and 'n/a', never NaN or 'missed'."""
    from transforms.hint_report import write_hint_report

    full = write_hint_report(_hint_rows([0, 10]), str(tmp_path / "a"), ["guided"], ["IDW"])
    t = full["targets"]["guided"]
    assert t["ratio_to_idw_at_10"] == pytest.approx(5.5 / 7.5) and t["ratio_target_met"]
    assert t["psnr_gain_at_10_db"] == pytest.approx(-5.0)  # the rows' psnr falls with n here
    write_hint_report(_hint_rows([0, 2]), str(tmp_path / "b"), ["guided"], ["IDW"])
    text = (tmp_path / "b" / "hints.json").read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    t = doc["targets"]["guided"]
    assert t["ratio_to_idw_at_10"] is None and t["ratio_target_met"] is None
    assert t["psnr_gain_at_10_db"] is None
    md = (tmp_path / "b" / "hints.md").read_text()
    assert "missed" not in md and "nan" not in md.lower().replace("n/a", "")
    assert "IDW at 10 points: n/a: the sweep lacks 0 or 10 points" in md
