"""`chromabeam train`: staged shards -> a checkpoint + model card (plain PyTorch, not Beam).

Streams shards (models.data), AdamW with warm-up + cosine decay (by steps or by the time
budget), a tqdm bar with loss and images/s, validation each epoch, `--resume` from the last
checkpoint, `--init` to fine-tune from another model's weights, `--max-minutes` to stop
cleanly on a time budget.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.base import DEFAULT_TEMPERATURE, ClassificationColorizer, normalize_l
from models.card import write_card
from models.data import ShardStream, check_space, count_rows, shard_files, staged_size
from models.guided import HintLoss, hint_tensors
from models.losses import (
    ClassificationLoss,
    HypercolumnLoss,
    MultiHypothesisLoss,
    PicLoss,
    RegressionLoss,
)
from models.multihyp import branch_stats
from models.registry import build, names, read_checkpoint, save_checkpoint
from pipeline import checks  # the CLI's option validators and fail-fast checks
from pipeline.progress import note_saved
from transforms.fileio import join, read_bytes, read_json
from transforms.metrics import auc as auc_metric

log = logging.getLogger(__name__)
JOB = "train"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` job's options."""
    p.add_argument("stage_dir", help="output folder of `chromabeam stage` (shards + priors)")
    p.add_argument("output", help="run folder: checkpoint.pt, model.pt, MODEL.md, metrics.json")
    p.add_argument("--model", default="eccv16-small", choices=names(), help="model to train")
    p.add_argument(
        "--width", type=checks.model_width, default=0.25, help="width multiplier (small models)"
    )
    p.add_argument(
        "--epochs", type=checks.positive_int, default=4, help="passes over the train split"
    )
    p.add_argument("--batch-size", type=checks.positive_int, default=32, help="images per step")
    p.add_argument(
        "--lr",
        type=checks.non_negative_float,
        default=2e-3,
        help="peak learning rate (warm-up + cosine)",
    )
    p.add_argument(
        "--weight-decay", type=checks.non_negative_float, default=1e-4, help="AdamW weight decay"
    )
    p.add_argument(
        "--crop",
        type=checks.render_size,
        default=None,
        help="random crop side (default: the full staged size)",
    )
    p.add_argument(
        "--seed", type=checks.non_negative_int, default=0, help="seed of init, order, crops"
    )
    p.add_argument("--device", type=checks.device_name, default="auto", help="where to train")
    p.add_argument(
        "--threads",
        type=checks.non_negative_int,
        default=0,
        help="torch CPU threads (0: torch default)",
    )
    p.add_argument("--no-rebalance", action="store_true", help="plain soft cross-entropy")
    p.add_argument("--loss", default="l2", choices=["l2", "huber"], help="regression loss")
    p.add_argument(
        "--temperature",
        type=checks.temperature,
        default=DEFAULT_TEMPERATURE,
        help="annealed-mean T stored in the model config (decode default)",
    )
    p.add_argument("--resume", action="store_true", help="continue from output/checkpoint.pt")
    p.add_argument("--init", default=None, help="start from these weights (fine-tuning)")
    p.add_argument(
        "--max-minutes",
        type=checks.positive_float,
        default=None,
        help="stop after this much time (default: no time limit)",
    )
    p.add_argument(
        "--max-val", type=checks.non_negative_int, default=2000, help="validation images per epoch"
    )
    p.add_argument("--half", action="store_true", help="write model.pt in fp16")
    p.add_argument(
        "--render-size",
        type=checks.render_size,
        default=256,
        help="default inference input side stored in the model config",
    )
    mh = p.add_argument_group("multihypothesis model")
    mh.add_argument(
        "--k", type=checks.hypotheses, default=5, help="number of ab hypotheses (branches)"
    )
    mh.add_argument(
        "--mh-split",
        type=checks.number_in(0, 2, integer=True),
        default=1,
        help="head convs per branch",
    )
    mh.add_argument(
        "--mh-region",
        type=checks.non_negative_int,
        default=16,
        help="min over branches per N x N input-pixel region (0: per pixel)",
    )
    mh.add_argument(
        "--mh-relax",
        type=checks.number_in(0.0, 1.0, hi_open=True),
        default=0.05,
        help="weight shared by the non-winning branches (relaxed winner-takes-all)",
    )
    pic = p.add_argument_group("pic model")
    pic.add_argument(
        "--pic-head",
        default="ar",
        choices=["ar", "factorised"],
        help="autoregressive PixelCNN head, or the factorised ablation",
    )
    pic.add_argument(
        "--pic-channels", type=checks.positive_int, default=48, help="PixelCNN channels"
    )
    pic.add_argument(
        "--pic-freeze-trunk",
        action="store_true",
        help="keep g(L) as initialised by --init (train only the head)",
    )
    pic.add_argument(
        "--pic-blocks", type=checks.positive_int, default=4, help="gated residual blocks"
    )
    pic.add_argument(
        "--pic-mix", type=checks.positive_int, default=10, help="logistic mixture components"
    )
    hc = p.add_argument_group("hypercolumn model")
    hc.add_argument(
        "--hc-points",
        type=checks.non_negative_int,
        default=256,
        help="pixels sampled per image per step (sparse hypercolumns; 0: dense training)",
    )
    hc.add_argument(
        "--hc-stride",
        type=checks.positive_int,
        default=2,
        help="dense output grid: 1/N of the input side",
    )
    hc.add_argument(
        "--hc-hue-weight",
        type=checks.non_negative_float,
        default=5.0,
        help="λ_H: weight of the chroma-weighted hue cross-entropy",
    )
    hc.add_argument(
        "--hc-chroma-decode",
        default="median",
        choices=["median", "mean", "mode"],
        help="chroma decoding stored in the config (decode default)",
    )
    hc.add_argument(
        "--hc-hue-decode",
        default="mean",
        choices=["mean", "mode"],
        help="hue decoding stored in the config: circular expectation or mode",
    )


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu (logged)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
        log.info("device: %s", name)
    return torch.device(name)


def make_loss(model, args, stage_dir: str) -> torch.nn.Module:
    """The loss for the model's kind, with the staged rebalancing weights."""
    if model.kind == "multihypothesis":
        return MultiHypothesisLoss(model.k, args.mh_region, args.mh_relax)
    if model.kind == "pic":
        return PicLoss(model)  # bits per ab dimension
    if model.kind == "hypercolumn":
        return HypercolumnLoss(model.bins, args.hc_hue_weight)
    if getattr(model, "takes_hints", False):
        return HintLoss()  # smooth-L1, Zhang 2017
    if not isinstance(model, ClassificationColorizer):
        return RegressionLoss(args.loss)
    if args.no_rebalance:
        return ClassificationLoss(None)
    w = np.load(io.BytesIO(read_bytes(join(stage_dir, "rebalance_weights.npy"))))
    return ClassificationLoss(torch.tensor(w, dtype=torch.float32))


@torch.no_grad()
def validate(model, loss_fn, loader, device, temperature: float) -> dict[str, float]:
    """Validation loss, mean ab error and AuC (ab error CMF, t = 0..150) at the staged size."""
    model.eval()
    loss_sum, images, errors, mh = 0.0, 0, [], []
    for l, ab in loader:
        l, ab = l.to(device), ab.to(device)
        out = model(normalize_l(l))
        loss_sum += float(loss_fn(out, ab)) * len(l)
        images += len(l)
        if model.kind == "multihypothesis":
            mh.append(branch_stats(model, out, ab))
        pred = model.decode(out, size=tuple(ab.shape[-2:]), temperature=temperature)
        errors.append(torch.linalg.vector_norm(pred - ab, dim=1).flatten().cpu().numpy())
    model.train()
    if not errors:
        return {}
    err = np.concatenate(errors)
    return {
        "val_loss": loss_sum / images,
        "val_ab_error": float(err.mean()),
        "val_auc": float(auc_metric(err)),
        **(_branch_summary(mh) if mh else {}),
    }


def _branch_summary(stats: list[dict]) -> dict:
    """Validation summary of a multihypothesis model: per-branch win rates (per pixel and per
    16x16 region), how often the selector picks each branch, and mean ab errors of the
    selector's pick and of the per-pixel / per-region oracles (model output resolution)."""
    total = {k: sum(s[k] for s in stats) for k in stats[0]}
    px, rg = total["pixels"], total["regions"]
    return {
        "val_pixel_win_rate": [round(float(x) / px, 4) for x in total["pixel_wins"]],
        "val_region_win_rate": [round(float(x) / rg, 4) for x in total["region_wins"]],
        "val_selector_pick_rate": [round(float(x) / px, 4) for x in total["selector_picks"]],
        "val_selector_accuracy": total["selector_accuracy"] / px,
        "val_selector_ab_error": total["selector_error"] / px,
        "val_oracle_pixel_ab_error": total["oracle_pixel_error"] / px,
        "val_oracle_region16_ab_error": total["oracle_region_error"] / px,
    }


def lr_factor(progress: float, warmup: float = 0.05, floor: float = 0.01) -> float:
    """Linear warm-up then cosine decay to `floor`, over progress in [0, 1].

    Progress is the larger of steps done / planned and minutes used / --max-minutes, so a
    time-budgeted run still ends with an annealed learning rate.
    """
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return max(floor, progress / warmup)
    cos = 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))
    return floor + (1.0 - floor) * cos


def _priors_hash(stage_dir: str) -> str:
    return hashlib.sha256(read_bytes(join(stage_dir, "priors.json"))).hexdigest()[:16]


def run(args: argparse.Namespace, beam_args: list[str] | None = None) -> dict:
    """Train to completion (or the time budget) holding the output folder's lock (one run
    per folder, as the other jobs); returns the final metrics."""
    from pipeline.locking import output_lock

    if beam_args:
        raise checks.UsageError(f"train runs without Beam: unrecognised {' '.join(beam_args)}")
    checks.check_stage_dir(args.stage_dir)  # fail fast: inputs, device, --init, output
    checks.check_device(args.device)
    if args.init:
        checks.check_checkpoint_file(args.init, f"--init {args.init}")
    files = shard_files(args.stage_dir)
    n_train, n_val = count_rows(files, "train"), count_rows(files, "val")
    check_rows(args, files, n_train)
    check_run_folder(Path(args.output), args.resume)
    checks.check_output_dir(args.output)  # makes the folder: the last check
    with output_lock(args.output, JOB):
        return _train(args, files, n_train, n_val)


def check_run_folder(out: Path, resume: bool) -> None:
    """UsageError if `out` holds a trained model and --resume was not given (a new run
    would replace it); a warning if --resume finds no checkpoint (a run from scratch)."""
    held = [n for n in ("checkpoint.pt", "model.pt") if (out / n).exists()]
    if held and not resume:
        raise checks.UsageError(
            f"output {out} holds a trained model ({', '.join(held)}): pass --resume to "
            "continue it, or write to another folder"
        )
    if resume and not (out / "checkpoint.pt").exists():
        log.warning("--resume: no checkpoint.pt in %s: training from scratch", out)


def check_rows(args: argparse.Namespace, files: list[str], n_train: int) -> None:
    """UsageError unless the shards hold train rows and --crop fits in their crops."""
    if not n_train:
        raise checks.UsageError(
            f"{args.stage_dir}: no train rows (all in the val split): restage with a lower "
            "--val-percent"
        )
    staged = staged_size(files)
    if args.crop and args.crop > staged:
        raise checks.UsageError(
            f"--crop {args.crop} is larger than the staged crops ({staged} px): restage with "
            f"--size {args.crop} or crop less"
        )


def _saved_note(ckpt_path: Path, epochs_done: int, epochs: int) -> str | None:
    """What a Ctrl-C leaves behind (pipeline.cli's one line): the epoch checkpoint.pt holds."""
    if not epochs_done:
        return "no epoch finished yet, none saved"
    return f"{ckpt_path} holds epoch {epochs_done}/{epochs}"


SCHEDULE_KEYS = (  # training options, not model settings: a --resume may change them
    *("epochs", "batch_size", "lr", "weight_decay", "crop", "seed"),
    *("max_minutes", "loss", "no_rebalance", "max_val", "init"),
)


def schedule_of(args: argparse.Namespace) -> dict:
    """The training options checkpoint.pt records (SCHEDULE_KEYS), to name what a --resume
    changes: they may change (more --epochs, a lower --lr), the model settings may not."""
    return {k: getattr(args, k, None) for k in SCHEDULE_KEYS}


def schedule_changes(saved: dict | None, now: dict) -> list[str]:
    """'lr 0.0005 -> 0.001' for each training option a resumed run changes (none recorded:
    a checkpoint from before they were, nothing to compare)."""
    if not saved:
        return []
    return [f"{k} {saved.get(k)} -> {now[k]}" for k in now if saved.get(k) != now[k]]


def this_command() -> str:
    """The command line of this run, as `chromabeam train ...` when run from the CLI."""
    if sys.argv[1:2] == ["train"]:
        return "chromabeam train " + " ".join(sys.argv[2:])
    return " ".join(sys.argv)


def check_resumable(saved: dict, config: dict, ckpt_path: Path) -> None:
    """UsageError unless the checkpoint was trained with this run's model settings (names the
    settings that differ, with the checkpoint's values)."""
    diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if diff:
        was = ", ".join(f"{k}={saved.get(k)!r}" for k in diff if k != "prior")
        raise checks.UsageError(
            f"--resume: {ckpt_path} was trained with other settings ({was or 'another prior'}): "
            "resume with the options (and stage folder) it was trained with"
        )


def _train(args: argparse.Namespace, files: list[str], n_train: int, n_val: int) -> dict:
    """run()'s training, its checks done and the lock held."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    log.info("%d shards: %d train / %d val rows", len(files), n_train, n_val)
    priors = read_json(join(args.stage_dir, "priors.json"))
    check_space(priors, files, args.model)  # e.g. yuv shards: one clear line, exit 2
    config = {
        "name": args.model,
        "width": args.width,
        "num_bins": priors["num_bins"],
        "priors_sha256": _priors_hash(args.stage_dir),
        "temperature": args.temperature,
        "train_size": args.crop or None,
        "render_size": args.render_size,
        "prior": priors["empirical"],
    }
    if args.model == "siggraph17-small":
        config["residual"] = True  # propagated hints in, output = propagation + correction
    if args.model == "multihypothesis":
        config.update(k=args.k, split=args.mh_split, temperature=1.0, mh_region=args.mh_region)
    if args.model == "pic":
        config.update(
            head=args.pic_head,
            channels=args.pic_channels,
            blocks=args.pic_blocks,
            mix=args.pic_mix,
            freeze_trunk=args.pic_freeze_trunk,
            temperature=1.0 if args.temperature == DEFAULT_TEMPERATURE else args.temperature,
            decode="mean",
        )
    if args.model == "hypercolumn":
        config.update(
            points=args.hc_points,
            out_stride=args.hc_stride,
            chroma_decode=args.hc_chroma_decode,
            hue_decode=args.hc_hue_decode,
            temperature=1.0 if args.temperature == DEFAULT_TEMPERATURE else args.temperature,
        )
    model = build(config).to(device)
    if args.init:
        obj, _ = read_checkpoint(args.init)
        state = obj["state_dict"] if "state_dict" in obj else obj
        if hasattr(model, "load_init"):  # partial: where names and shapes match
            log.info("initialised %d tensors from %s", len(model.load_init(state)), args.init)
        else:
            model.load_state_dict(state)
            log.info("initialised from %s", args.init)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, math.ceil(n_train / args.batch_size))
    total_steps = args.epochs * steps_per_epoch
    loss_fn = make_loss(model, args, args.stage_dir).to(device)
    history: list[dict] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    schedule, commands = schedule_of(args), [this_command()]
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        check_resumable(ck["config"], config, ckpt_path)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, history = ck["epoch"], ck["step"], ck["history"]
        elapsed = ck.get("elapsed", 0.0)
        commands = ck.get("commands", []) + commands
        log.info("resumed at epoch %d, step %d", start_epoch, step)
        changed = schedule_changes(ck.get("schedule"), schedule)
        if changed:
            log.warning(
                "--resume: training options differ from the run that saved %s (%s): training "
                "goes on with the new values; the model card lists every command",
                ckpt_path,
                ", ".join(changed),
            )
    note_saved(JOB, _saved_note(ckpt_path, start_epoch, args.epochs))
    train_ds = ShardStream(
        files,
        "train",
        crop=args.crop,
        train=True,
        seed=args.seed,
        hints=getattr(model, "takes_hints", False),  # simulated hints (Zhang 2017)
    )
    val_ds = ShardStream(files, "val", train=False)
    val_loader = DataLoader(_Take(val_ds, args.max_val), batch_size=64)
    t0 = time.time() - elapsed
    budget = args.max_minutes * 60 if args.max_minutes else float("inf")
    stopped_early = False
    model.train()
    for epoch in range(start_epoch, args.epochs):
        train_ds.set_epoch(epoch)
        bar = tqdm(
            DataLoader(train_ds, batch_size=args.batch_size),
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            dynamic_ncols=True,
            mininterval=2.0,
        )
        running, seen, total, t_epoch = 0.0, 0, 0.0, time.time()
        for l, ab, *hint in bar:
            l, ab = l.to(device, non_blocking=True), ab.to(device, non_blocking=True)
            extra = hint_tensors(hint[0].to(device)) if hint else ()
            loss = loss_fn(model(normalize_l(l), *extra), ab)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = args.lr * lr_factor(
                    max(step / total_steps, (time.time() - t0) / budget)
                )
            opt.step()
            step += 1
            seen += len(l)
            total += loss.item() * len(l)  # the epoch's mean loss goes on the card
            running = 0.98 * running + 0.02 * loss.item() if seen > len(l) else loss.item()
            bar.set_postfix(loss=f"{running:.3f}", img_s=f"{seen / (time.time() - t_epoch):.0f}")
            if time.time() - t0 > budget:
                stopped_early = True
                break
        metrics = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": total / max(seen, 1),  # mean over the epoch (the bar shows an EMA)
            "minutes": (time.time() - t0) / 60,
            **validate(model, loss_fn, val_loader, device, args.temperature),
        }
        history.append(metrics)
        log.info("epoch %d: %s", epoch + 1, json.dumps(metrics))
        save_checkpoint(
            str(ckpt_path),
            model,
            config,
            optimizer=opt.state_dict(),
            epoch=epoch + 1,
            step=step,
            history=history,
            elapsed=time.time() - t0,
            schedule=schedule,
            commands=commands,
        )
        note_saved(JOB, _saved_note(ckpt_path, epoch + 1, args.epochs))
        if stopped_early:
            log.info("time budget of %.1f min reached: stopping", args.max_minutes)
            break
    save_checkpoint(str(out / "model.pt"), model, config, half=args.half)
    summary = {
        "config": config,
        "command": commands[-1],
        "commands": commands,  # the first run's, then each --resume's
        "stage_dir": args.stage_dir,
        "train_rows": n_train,
        "val_rows": n_val,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "minutes": (time.time() - t0) / 60,
        "stopped_early": stopped_early,
        "history": history,
    }
    write_card(out, summary)
    return summary


class _Take(torch.utils.data.IterableDataset):
    """The first n items of an iterable dataset."""

    def __init__(self, ds, n: int):
        super().__init__()
        self.ds, self.n = ds, n

    def __iter__(self):
        for i, item in enumerate(self.ds):
            if i >= self.n:
                return
            yield item
