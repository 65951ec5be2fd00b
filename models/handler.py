"""The Beam side of inference: the RunInference handler (models load once per worker process,
or once per machine with `large_model` / `model_copies`). The prediction functions it calls
live in models/infer.py, which imports no Beam, so single-file jobs (`-o`) skip Beam."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult

from models.base import Colorizer
from models.infer import DecodeSettings, predict, predict_hypotheses, resolve_device
from models.registry import load_model
from transforms.threads import freeze_long_lived, limit_threads

log = logging.getLogger(__name__)


class SharedPredictor:
    """The model behind one object whose methods take and return numpy arrays only, so that
    Beam can serve it from one process to all of a worker's processes (ColorizerHandler with
    `large_model` / `model_copies`: RunInference hands run_inference a proxy to this object,
    and a proxy forwards method calls, not torch attribute access)."""

    def __init__(self, model: Colorizer):
        self.model = model

    def predict(
        self, l_batch: np.ndarray, settings: DecodeSettings, with_probs: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        return predict(self.model, l_batch, settings, with_probs)

    def predict_hypotheses(self, l_batch: np.ndarray) -> np.ndarray:
        return predict_hypotheses(self.model, l_batch)


def num_bytes(value) -> int:
    """Bytes a value holds: arrays' nbytes, bytes' and strings' lengths, summed through dicts,
    lists and tuples (other values count 8) — what RunInference's byte counter needs, without
    pickling the value to measure it."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, dict):
        return sum(num_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(num_bytes(v) for v in value)
    return 8


class KeyedColorizerHandler(KeyedModelHandler):
    """KeyedModelHandler that counts a batch's bytes with num_bytes: Beam's own pickles every
    key only to measure it, and the jobs' keys are their items, full-resolution L included
    (colorize on worker threads: the pickling held the GIL for most of a batch's)."""

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        return sum(num_bytes(key) + num_bytes(example) for key, example in batch)


class ColorizerHandler(ModelHandler[np.ndarray, PredictionResult, Colorizer]):
    """RunInference handler: examples are L arrays (S, S); inferences ab (h, w, 2), or
    (ab, probabilities) with `with_probs` for classification models, or with `hypotheses`
    the K ab hypotheses (K, h, w, 2) of a multihypothesis model (the codec).

    `large_model=True` shares one model per machine across the worker's processes (Beam's
    share_model_across_processes: one copy per GPU instead of one per process); with
    `model_copies=N`, N copies are shared (e.g. one per GPU). Off by default: per-process
    models are faster on CPU workers."""

    def __init__(
        self,
        model: str | None,
        weights: str | None,
        device: str = "auto",
        settings: DecodeSettings | None = None,
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        with_probs: bool = False,
        threads: int | None = None,
        hypotheses: bool = False,
        large_model: bool = False,
        model_copies: int | None = None,
        per_image: bool = False,
    ):
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            large_model=large_model,
            model_copies=model_copies,
        )
        self.hypotheses = hypotheses
        self.per_image = per_image  # one forward pass per image: results never depend on batching
        self.model_name, self.weights, self.device_name = model, weights, device
        self.settings = settings or DecodeSettings()
        self.with_probs, self.threads = with_probs, threads
        self._batch = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self) -> Colorizer:
        limit_threads(self.threads)  # torch and numpy's BLAS: the workers share the cores
        device = resolve_device(self.device_name)
        model, config = load_model(self.model_name, self.weights, str(device))
        log.info("loaded %s (%s) on %s", config["name"], config["weights"], device)
        freeze_long_lived()  # the model and torch's objects stay to the worker's end
        return SharedPredictor(model) if self.share_model_across_processes() else model

    def run_inference(
        self, batch: Sequence[np.ndarray], model: Colorizer, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        shared = self.share_model_across_processes()  # model: a (proxy to a) SharedPredictor
        if self.hypotheses:
            l_batch = np.stack(batch)
            if shared:
                hyps = model.predict_hypotheses(l_batch)
            else:
                hyps = predict_hypotheses(model, l_batch)
            return [PredictionResult(x, y) for x, y in zip(batch, hyps, strict=True)]
        run = model.predict if shared else partial(predict, model)
        if self.per_image:  # a conv's float result can depend on the batch it is computed in
            parts = [run(x[None], self.settings, self.with_probs) for x in batch]
            ab = np.concatenate([a for a, _ in parts])
            probs = None if parts[0][1] is None else np.concatenate([p for _, p in parts])
        else:
            ab, probs = run(np.stack(batch), self.settings, self.with_probs)
        if probs is None:
            return [PredictionResult(x, y) for x, y in zip(batch, ab, strict=True)]
        return [PredictionResult(x, (y, p)) for x, y, p in zip(batch, ab, probs, strict=True)]

    def batch_elements_kwargs(self) -> dict:
        return dict(self._batch)

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(x.nbytes for x in batch)
