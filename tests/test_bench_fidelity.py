"""bench/fidelity.py's record keeps the run's own fields: a figure of the evaluation named like one
of them is an error, not an overwrite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "bench_fidelity", Path(__file__).resolve().parents[1] / "bench" / "fidelity.py"
)
bench_fidelity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_fidelity)


def test_figures_join_the_record_without_their_details():
    record = bench_fidelity.merge_figures(
        {"name": "g", "trained_in": "bf16"}, {"fid": 80.0, "precision": 0.3, "details": {}}
    )
    assert record == {"name": "g", "trained_in": "bf16", "fid": 80.0, "precision": 0.3}


def test_a_figure_named_like_an_own_field_is_an_error():
    with pytest.raises(ValueError, match="precision"):
        bench_fidelity.merge_figures({"precision": "bf16"}, {"precision": 0.3, "fid": 80.0})
