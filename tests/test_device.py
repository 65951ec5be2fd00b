"""Device selection and the GPU path of inference (skipped where no CUDA device exists)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models.infer import DecodeSettings, predict, resolve_device
from models.registry import build
from tests.conftest_models import one_thread, tiny_config


def test_auto_falls_back_to_cpu_with_a_log_line(caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="models.infer"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "no CUDA device" in caplog.text


def test_explicit_device_is_kept():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inference_matches_cpu():
    one_thread()
    model = build(tiny_config()).eval()
    l = np.random.default_rng(0).uniform(0, 100, (3, 32, 32)).astype(np.float32)
    ab_cpu, p_cpu = predict(model, l, DecodeSettings(), with_probs=True)
    ab_gpu, p_gpu = predict(model.to("cuda"), l, DecodeSettings(), with_probs=True)
    np.testing.assert_allclose(ab_gpu, ab_cpu, atol=1e-3)
    np.testing.assert_allclose(p_gpu, p_cpu, atol=1e-4)
