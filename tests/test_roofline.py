"""bench/roofline.py counts what a batch row costs: checked on ops whose cost is known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location(
    "roofline", Path(__file__).resolve().parents[1] / "bench" / "roofline.py"
)
roofline = importlib.util.module_from_spec(spec)
sys.modules["roofline"] = roofline  # its dataclass looks itself up there
spec.loader.exec_module(roofline)


def test_a_convolution_row_costs_its_multiply_adds_and_its_tensors():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1)
    cost = roofline.per_row(lambda b: conv(torch.randn(b, 8, 12, 12)), "h100")
    assert cost.flops == pytest.approx(2 * 8 * 16 * 9 * 12 * 12)  # weights drop out
    # per row: the input is made (randn) and read, the output written
    assert cost.elements == pytest.approx(8 * 144 * 2 + 16 * 144)
    bf16, _, _, tbs = roofline.GPUS["h100"]
    made = 2 * 8 * 144 / (tbs * 1e12)  # randn writes the input in bf16
    conv_time = max(cost.flops / (bf16 * 1e12), 2 * (8 + 16) * 144 / (tbs * 1e12))
    assert cost.seconds_bf16 == pytest.approx(made + conv_time)


def test_attention_flops_are_counted_on_the_cpu_kernels_too():
    q = torch.randn(3, 2, 50, 16)
    cost = roofline.per_row(
        lambda b: torch.nn.functional.scaled_dot_product_attention(q[:b], q[:b], q[:b]), "h100"
    )
    assert cost.flops == pytest.approx(4 * 2 * 50 * 50 * 16)
