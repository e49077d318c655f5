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
    x, y = 8 * 144, 16 * 144  # a row's input and output elements
    # fp32: randn writes the input, the convolution reads it and writes its output
    assert cost.bytes_fp32 == pytest.approx(4 * x + 4 * (x + y))
    # bf16 autocast adds a cast of the input (fp32 read, bf16 write); the convolution is bf16
    assert cost.bytes_bf16 == pytest.approx(4 * x + (4 * x + 2 * x) + 2 * (x + y))
    _, tf32, _, tbs = roofline.GPUS["h100"]
    fp32_time = 4 * x / (tbs * 1e12) + max(cost.flops / (tf32 * 1e12), 4 * (x + y) / (tbs * 1e12))
    assert cost.seconds_fp32 == pytest.approx(fp32_time)
    assert cost.seconds_fused < cost.seconds_bf16  # randn and the cast are not anchors


def test_group_norm_stays_fp32_under_autocast():
    norm = torch.nn.GroupNorm(4, 8)
    cost = roofline.per_row(lambda b: norm(torch.randn(b, 8, 6, 6)), "h100")
    assert cost.bytes_bf16 == pytest.approx(cost.bytes_fp32)


def test_attention_flops_are_counted_on_the_cpu_kernels_too():
    q = torch.randn(3, 2, 50, 16)
    cost = roofline.per_row(
        lambda b: torch.nn.functional.scaled_dot_product_attention(q[:b], q[:b], q[:b]), "h100"
    )
    assert cost.flops == pytest.approx(4 * 2 * 50 * 50 * 16)
