"""Model cards: MODEL.md + metrics.json next to a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path


def write_card(run_dir: Path, summary: dict) -> None:
    """Write metrics.json (everything) and a human-readable MODEL.md."""
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    cfg = summary["config"]
    stopped = " (stopped by time budget)" if summary["stopped_early"] else ""
    nan = float("nan")
    lines = [
        f"# {cfg['name']} (width {cfg.get('width')})",
        "",
        *[f"- command: `{c}`" for c in summary.get("commands", [summary["command"]])],
        f"- data: `{summary['stage_dir']}` ({summary['train_rows']} train / "
        f"{summary['val_rows']} val images)",
        f"- device: {summary['device']} ({summary['threads']} threads), "
        f"{summary['minutes']:.1f} min{stopped}",
        f"- priors sha256[:16]: {cfg.get('priors_sha256')}; "
        f"decode temperature {cfg.get('temperature')}",
        "",
        "| epoch | step | train loss | val loss | val ab error | val AuC | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in summary["history"]:
        lines.append(
            f"| {h['epoch']} | {h['step']} | {h['train_loss']:.4f} | {h.get('val_loss', nan):.4f} "
            f"| {h.get('val_ab_error', nan):.2f} | {h.get('val_auc', nan):.4f} "
            f"| {h['minutes']:.1f} |"
        )
    (run_dir / "MODEL.md").write_text("\n".join(lines) + "\n")
