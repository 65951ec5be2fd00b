"""Package a trained run as shipped weights: `python -m models.ship RUN_DIR NAME [--eval DIR]`.

Writes models/weights/NAME.pt (fp16 state_dict + config), NAME.md (the run's model card,
plus the benchmark table of an `evaluate` output when --eval is given) and NAME.metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from models.registry import WEIGHTS_DIR, read_checkpoint
from transforms.fileio import read_json

log = logging.getLogger(__name__)
TABLE_METRICS = [
    ("ciede2000", "CIEDE2000 ↓", "{:.2f}"),
    ("auc", "AuC ↑", "{:.4f}"),
    ("auc_rebalanced", "AuC rebal. ↑", "{:.4f}"),
    ("psnr", "PSNR dB ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.4f}"),
    ("colorfulness", "colorfulness", "{:.1f}"),
    ("delta_colorfulness", "\\|ΔCF\\| ↓", "{:.1f}"),
]


def eval_table(summary: dict) -> str:
    """A Markdown table of an evaluate summary.json: models x metrics, mean [95% CI]."""
    per_model = summary["aggregate"]["per_model"]
    head = "| model | n | " + " | ".join(label for _, label, _ in TABLE_METRICS) + " |"
    lines = [head, "|---" * (len(TABLE_METRICS) + 2) + "|"]
    for name in summary["aggregate"]["models"]:
        agg = per_model[name]
        cells = []
        for key, _, fmt in TABLE_METRICS:
            m = agg["metrics"].get(key)
            cells.append(
                "—"
                if not m
                else f"{fmt.format(m['mean'])} [{fmt.format(m['low'])}, {fmt.format(m['high'])}]"
            )
        lines.append(f"| {name} | {agg['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ship(
    run_dir: Path, name: str, eval_dir: str | None = None, notes: Path | None = None, **decode
) -> Path:
    """Write the shipped files; returns the weights path. `decode` overrides config entries
    (render_size, temperature, strength) where not None."""
    import torch

    obj, _ = read_checkpoint(str(run_dir / "model.pt"))
    config = dict(obj["config"])
    config.update({k: v for k, v in decode.items() if v is not None})
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in obj["state_dict"].items()}
    out = WEIGHTS_DIR / f"{name}.pt"
    torch.save({"config": config, "state_dict": state}, out)
    card = (run_dir / "MODEL.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if notes:
        card += "\n" + notes.read_text()
    if eval_dir:
        summary = read_json(f"{eval_dir}/summary.json")
        meta = summary.get("meta", {})
        card += (
            f"\n## Benchmark: {meta.get('data')} ({meta.get('images')} images, "
            f"size {meta.get('size')}, original L kept)\n\n"
            "Mean over images with 95% bootstrap CI; produced by "
            f"`chromabeam evaluate` into `{eval_dir}` (see its report.md).\n\n"
            + eval_table(summary)
            + "\n"
        )
        metrics["benchmark"] = {"meta": meta, "aggregate": summary["aggregate"]}
    card += (
        f"\nShipped as `models/weights/{name}.pt` (fp16): render size "
        f"{config.get('render_size')}, decode T = {config.get('temperature')}, "
        f"strength {config.get('strength', 1.0)}.\n"
    )
    (WEIGHTS_DIR / f"{name}.md").write_text(card)
    (WEIGHTS_DIR / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    log.info("shipped %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_dir", type=Path, help="a `chromabeam train` output folder")
    p.add_argument("name", help="shipped name, e.g. eccv16-small")
    p.add_argument("--render-size", type=int, default=None, help="inference input side")
    p.add_argument("--temperature", type=float, default=None, help="annealed-mean T")
    p.add_argument("--strength", type=float, default=None, help="factor on predicted ab")
    p.add_argument("--decode", default=None, help="default decode method stored in the config")
    p.add_argument("--eval", default=None, help="an `evaluate` output to add to the card")
    p.add_argument("--notes", type=Path, default=None, help="Markdown to add to the card")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    ship(
        args.run_dir,
        args.name,
        args.eval,
        args.notes,
        render_size=args.render_size,
        temperature=args.temperature,
        strength=args.strength,
        decode=args.decode,
    )


if __name__ == "__main__":
    main()
