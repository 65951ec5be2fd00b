"""Benchmark: why Larsson et al. train hypercolumns sparsely. One training step of the
hypercolumn model (forward, loss, backward, AdamW step) at the same batch, dense (every pixel's
hypercolumn: each level upsampled to the full input grid) vs sparse (P random pixels per image
sampled with grid_sample).

Each variant runs in a fresh child process, so peaks do not mix: it prints the step time (median
of --steps after one warm-up), the process's peak RSS growth over the step (VmHWM after the
steps minus VmHWM before the first one) and the bytes autograd saved for backward (the
activations, counted with saved_tensors_hooks), then the dense / sparse ratios.

    python bench/hypercolumn.py [--batch 8] [--size 128] [--points 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(variant: str, batch: int, size: int, points: int, steps: int, threads: int) -> dict:
    """Run `steps` + 1 training steps of one variant in this process; returns the numbers."""
    import torch

    from models.losses import HypercolumnLoss
    from models.registry import build

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dense = variant == "dense"
    model = build({"name": "hypercolumn", "points": 0 if dense else points, "out_stride": 1})
    model.train()
    loss_fn = HypercolumnLoss(model.bins)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    l = torch.rand(batch, 1, size, size) - 0.5
    ab = torch.randn(batch, 2, size, size) * 30
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(model(l), ab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    before = _vm_hwm_bytes()
    times = [step() for _ in range(steps + 1)][1:]
    return {
        "variant": variant,
        "batch": batch,
        "size": size,
        "points": 0 if dense else points,
        "step_s": statistics.median(times),
        "peak_rss_growth": _vm_hwm_bytes() - before,
        "saved_for_backward": saved[0] // (steps + 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="images per step (both variants)")
    p.add_argument("--size", type=int, default=128, help="input side")
    p.add_argument("--points", type=int, default=256, help="sparse: pixels per image")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--child", choices=["dense", "sparse"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shape = (args.batch, args.size, args.points, args.steps, args.threads)
    if args.child:
        print(json.dumps(measure(args.child, *shape)))
        return 0
    results = {}
    for variant in ("dense", "sparse"):
        cmd = [sys.executable, __file__, "--child", variant]
        cmd += ["--batch", str(args.batch), "--size", str(args.size)]
        cmd += ["--points", str(args.points), "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    d, s = results["dense"], results["sparse"]
    print(
        f"hypercolumn training step, batch {args.batch} x {args.size}^2, "
        f"{args.threads} thread(s): dense ({args.size * args.size} px/image) vs sparse "
        f"({args.points} px/image)"
    )
    print(f"{'variant':<8} {'step s':>8} {'peak RSS growth MiB':>20} {'saved for bwd MiB':>18}")
    for r in (d, s):
        print(
            f"{r['variant']:<8} {r['step_s']:>8.3f} {r['peak_rss_growth'] / 2**20:>20.1f} "
            f"{r['saved_for_backward'] / 2**20:>18.1f}"
        )
    print(
        f"ratio dense/sparse: step time {d['step_s'] / s['step_s']:.2f}x, peak RSS growth "
        f"{d['peak_rss_growth'] / max(s['peak_rss_growth'], 1):.2f}x, saved activations "
        f"{d['saved_for_backward'] / max(s['saved_for_backward'], 1):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
