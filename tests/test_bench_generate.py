"""bench/generate.py times the presets through the generate_cohort path: the random-weight
generator folder it builds must load and sample like a trained one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location(
    "bench_generate", Path(__file__).resolve().parents[1] / "bench" / "generate.py"
)
bench_generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_generate)


def test_the_random_weight_folder_loads_and_samples(tmp_path):
    from generation.ldm.pipeline import TilePipeline

    folder = bench_generate.build_pipeline_dir("tiny", {}, tmp_path)
    pipe = TilePipeline(folder, torch.device("cpu"))  # refused before: no latent shift/scale
    tiles = pipe.generate(["healthy tissue", "tumour tissue"], [0, 1], steps=2)
    assert tiles.shape == (2, 96, 96, 3) and tiles.dtype.name == "uint8"
