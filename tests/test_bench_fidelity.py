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


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[1] / ".git").exists(), reason="needs the git history"
)
def test_the_budget_plot_gives_each_version_of_the_cpu_preset_its_own_curve():
    version = bench_fidelity.cpu_version
    first, penalty = (since for since, _ in bench_fidelity.CPU_VERSIONS[:2])
    assert version({"commit": first}) == 1
    assert version({"commit": "1e1b878"}) == 1  # bench-cpu-60m-lat4: 4 latent channels
    assert version({"commit": penalty}) == 2
    assert version({"commit": "eef315e"}) == 2  # bench-cpu-60m-code: with the code penalty
    assert version({"commit": "3b6cb79"}) == 0  # bench-cpu-30m: 8 latent channels
    assert version({"commit": "2894dd6+changes"}) == 0  # an ablation on an earlier preset
    assert version({"commit": "0000000"}) == 0  # a commit this clone does not know
