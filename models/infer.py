"""Batched inference: L at render size -> ab at the model's output resolution (torch and
numpy only; the Beam handler that RunInference uses is models/handler.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from models.base import (
    AB_SCALE,
    DEFAULT_TEMPERATURE,
    ClassificationColorizer,
    Colorizer,
    normalize_l,
)
from transforms.bins import gamut_bins, hard_encode, num_bins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSettings:
    """How logits become ab: annealed-mean temperature, method, and output strength."""

    temperature: float = DEFAULT_TEMPERATURE
    method: str = "annealed"  # annealed | mean | mode (| sample: pic)
    strength: float = 1.0
    samples: int = 0  # pic: > 0 draws this many samples per image (colorize --samples)
    seed: int = 0  # pic: seed of the samples


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if present, else cpu (with a log line saying so)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("no CUDA device found: running the model on CPU")
        return torch.device("cpu")
    return torch.device(name)


@torch.inference_mode()
def predict(
    model: Colorizer, l_batch: np.ndarray, settings: DecodeSettings, with_probs: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """L (N, S, S) in [0, 100] -> ab (N, h, w, 2) float32 at the model's output resolution,
    and for classification models with `with_probs` the bin probabilities (N, h, w, Q) at T=1.

    A batch (N, S, S, 4) carries colour hints: L, then the hint map [a, b, mask]
    (transforms.hints.hint_map); a model that takes hints gets them, others ignore them.
    One host->device copy and one device->host copy per batch.
    """
    device = next(model.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(l_batch, dtype=np.float32)).to(device)
    if batch.ndim == 4:  # (N, S, S, 4): L + hint map
        batch = batch.permute(0, 3, 1, 2)
        x, hints = batch[:, :1], batch[:, 1:]
    else:
        x, hints = batch[:, None], None
    if model.kind == "pic":
        return predict_pic(model, x, hints if with_probs else None, settings)
    if getattr(model, "takes_hints", False):
        extra = (hints[:, :2] / AB_SCALE, hints[:, 2:3]) if hints is not None else ()
        out = model(normalize_l(x), *extra)
    else:
        out = model(normalize_l(x))
    ab = model.decode(out, temperature=settings.temperature, method=settings.method)
    probs = None
    if with_probs and isinstance(model, ClassificationColorizer):
        probs = gamut_probabilities(model, out).permute(0, 2, 3, 1).cpu().numpy()
    return ab.float().permute(0, 2, 3, 1).cpu().numpy(), probs


def predict_pic(
    model: Colorizer, x: torch.Tensor, truth: torch.Tensor | None, settings: DecodeSettings
) -> tuple[np.ndarray, np.ndarray | None]:
    """predict() for a pic model: x (N, 1, S, S) L. The conditioning features are computed
    once per image; ab is the deterministic decode (N, h, w, 2), or with settings.samples = K
    K seeded samples at settings.temperature (N, K, h, w, 2). With `truth` (N, 2, S, S), the
    true ab held constant over each cell of the model's grid (evaluate), the second value is
    the bits per ab dimension of each image (N,) instead of bin probabilities."""
    feats = model(normalize_l(x))
    bits = model.nll_bits(feats, truth).float().cpu().numpy() if truth is not None else None
    if settings.samples > 0:
        ab = torch.stack(
            [
                model.decode(
                    f[None].expand(settings.samples, -1, -1, -1),
                    temperature=settings.temperature,
                    method="sample",
                    seed=settings.seed,
                )
                for f in feats
            ]
        )  # (N, K, 2, h, w)
        return ab.float().permute(0, 1, 3, 4, 2).cpu().numpy(), bits
    method = "mean" if settings.method in ("annealed", "sample") else settings.method  # mode, mc
    ab = model.decode(feats, temperature=settings.temperature, method=method)
    return ab.float().permute(0, 2, 3, 1).cpu().numpy(), bits


def gamut_probabilities(model: ClassificationColorizer, logits: torch.Tensor) -> torch.Tensor:
    """The model's bin probabilities (T=1) over the project's gamut bins (N, Q, h, w).

    A model with other bins (official eccv16: 313) has each bin's mass added to the gamut bin
    nearest its centre, so likelihoods are comparable across models.
    """
    p = model.probabilities(logits)
    centres = model.bin_centres.cpu().numpy()
    if p.shape[1] == num_bins() and np.allclose(centres, gamut_bins(), atol=1e-3):
        return p
    target = torch.from_numpy(hard_encode(centres).astype(np.int64)).to(p.device)
    out = torch.zeros(p.shape[0], num_bins(), *p.shape[2:], dtype=p.dtype, device=p.device)
    return out.index_add_(1, target, p)


@torch.inference_mode()
def predict_hypotheses(model: Colorizer, l_batch: np.ndarray) -> np.ndarray:
    """L (N, S, S) in [0, 100] -> the K ab hypotheses of a multihypothesis model,
    (N, K, h, w, 2) float32 in Lab units at the model's output resolution.

    Images are run one at a time, so an image's hypotheses never depend on what it was
    batched with (the codec's encoder and decoder must see the same numbers).
    """
    if model.kind != "multihypothesis":
        raise ValueError(f"{type(model).__name__} has no hypotheses (use multihypothesis)")
    device = next(model.parameters()).device
    out = []
    for l in l_batch:
        x = torch.from_numpy(np.ascontiguousarray(l, dtype=np.float32))[None, None].to(device)
        hyps = model.hypotheses(model(normalize_l(x))).float() * AB_SCALE  # (1, K, 2, h, w)
        out.append(hyps.permute(0, 1, 3, 4, 2).cpu().numpy()[0])
    return np.stack(out)


def predict_ab(model: Colorizer, l_batch: np.ndarray, settings: DecodeSettings) -> np.ndarray:
    """predict() without probabilities."""
    return predict(model, l_batch, settings)[0]
