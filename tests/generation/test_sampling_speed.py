"""The sampling speed-ups keep the pictures: padding trimmed from prompts, torch.compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation import generators
from generation.cohorts import Runtime
from generation.ldm.models import build_unet
from generation.ldm.text import trim_padding
from generation.models import Tile
from generation.presets import PRESETS
from tests.generation.conftest import fixture_cohort


def padded(lengths: list[int], tokens: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    states = torch.randn(len(lengths), tokens, PRESETS["tiny"].generator.text_dim)
    mask = torch.zeros(len(lengths), tokens, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return states, mask


def test_trimmed_prompts_give_the_denoiser_the_same_output():
    config = PRESETS["tiny"].generator.replace(unet_attention=(True, True, True), pooled_text=False)
    unet = build_unet(config).eval()
    x = torch.randn(3, 4, 24, 24)
    states, mask = padded([5, 9, 2])
    short, short_mask = trim_padding(states, mask)
    assert short.shape[1] == 9 and short_mask is not None and short_mask.shape == (3, 9)
    with torch.no_grad():
        full = unet(x, 500, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        trimmed = unet(
            x, 500, encoder_hidden_states=short, encoder_attention_mask=short_mask
        ).sample
    assert torch.allclose(full, trimmed, atol=1e-5)


def test_a_compiled_network_sees_prompt_lengths_rounded_up():
    states, mask = padded([5, 9, 2])
    short, short_mask = trim_padding(states, mask, multiple=16)
    assert short.shape[1] == 16 and short_mask is not None and short_mask[:, 9:].sum() == 0
    assert trim_padding(*padded([60, 3]), multiple=16)[0].shape[1] == 64  # never past the end


def test_a_batch_without_padding_left_needs_no_mask():
    states, mask = padded([7, 7])
    short, short_mask = trim_padding(states, mask)
    assert short.shape[1] == 7 and short_mask is None
    clip_like = torch.ones(2, 77, dtype=torch.long)  # Stable Diffusion attends to all 77
    states77 = torch.randn(2, 77, 8)
    kept, none = trim_padding(states77, clip_like)
    assert kept.shape == (2, 77, 8) and none is None


@pytest.mark.slow  # torch.compile takes a minute or two on this CPU
@pytest.mark.django_db
def test_compiled_pipeline_gives_the_same_tiles_and_is_recorded(tiny_generator):
    prompts = [
        "Histology image of cancer tissue, morphology type one",
        "Histology image of healthy tissue",
    ] * 2
    seeds = [1, 2, 3, 4]
    eager = generators.load_pipeline(tiny_generator, "cpu").generate(prompts, seeds, steps=2)
    pipe = generators.load_pipeline(tiny_generator, "cpu", compiled=True)
    compiled = pipe.generate(prompts, seeds, steps=2)
    assert pipe.compiled and compiled.shape == eager.shape
    # fused kernels round differently: at most one grey level, and rarely
    diff = np.abs(compiled.astype(int) - eager)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    fixture_cohort("compiled", 2, runtime=Runtime(compiled=True))
    provenance = [t.provenance for t in Tile.objects.filter(cohort__name="compiled")]
    assert {(p["compiled"], p["precision"], p["device"]) for p in provenance} == {
        (True, "fp32", "cpu")
    }
