"""Every named size of the pipeline in one table: what `--preset tiny|cpu|cpu-v1|gpu` means for
the generator, the tumour classifier, the machine readers and run_experiment.

Pure data (no Django, no torch): the layers below the Django side (ldm, the classifier) and the
commands all read their sizes here, so a new preset is one entry in PRESETS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from generation.ldm.config import GeneratorConfig


@dataclass(frozen=True)
class ClassifierConfig:
    """The tumour classifier (evaluation.classifier) and, with fewer steps, the machine reader."""

    channels: tuple[int, ...] = (24, 32, 64, 128, 256)  # stem (stride 2), then one conv a level
    steps: int = 2400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    dropout: float = 0.2
    colour_jitter: float = 0.05  # brightness/contrast/saturation, +- this share
    max_minutes: float | None = 12.0
    mixed_precision: str = "auto"  # bf16 where it is faster (ldm.precision), else fp32

    def replace(self, **overrides: object) -> ClassifierConfig:
        return dataclasses.replace(self, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Preset:
    name: str
    generator: GeneratorConfig
    classifier: ClassifierConfig
    # steps of the real-vs-synthetic CNN per fold: a reader, not the utility classifier, so
    # fewer steps than a tumour classifier gets
    reader_steps: int
    # run_experiment: tiles per half of each cohort, real tiles in the FID reference (None: the
    # whole held-out split), morphology clusters, and the default budget in minutes
    cohort_size: int
    reference_size: int | None
    clusters: int
    budget_minutes: float


class PresetError(ValueError):
    """An unknown preset name; the message lists the known ones."""


def preset(name: str) -> Preset:
    """The preset called `name`, or PresetError listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise PresetError(f"unknown preset {name!r}; expected one of {known}") from None


TINY_GENERATOR = GeneratorConfig(
    vae_channels=(8, 16),
    vae_encoder_blocks=(1, 1),
    vae_decoder_blocks=(1, 1),
    latent_channels=4,
    vae_crop=0,
    vae_batch_size=8,
    unet_channels=(16, 32, 32),
    attention_head_dim=8,
    vae_steps=10,
    unet_steps=10,
    batch_size=8,
    checkpoint_every=5,
    ema_decay=0.9,
    mixed_precision="no",  # tests compare exact numbers
)

# 10 minutes on a 2-core VM with AMX buy about 700 autoencoder + 1,300 denoiser steps; fewer
# than 300 + 600 make noise, not tiles (docs/BENCHMARKS.md). The decoder trained on noised
# codes: FID 268.5 against 283.3 without, at 10 minutes. Four latent channels, not eight:
# at 580 + 1,330 steps FID300 163.2 against 193.0, though the autoencoder alone reconstructs
# worse (rFID 2.95x the floor against 2.15x): a short-trained denoiser models 4 channels better.
# The code penalty holds the codes' scale (std 3 instead of 2,795 after 1,000 steps): at 580 +
# 1,330 steps FID300 141.8 against 164.8 without, precision 0.13 against 0.05; it does not
# rescue 8 channels (197.0 at the same steps, though their autoencoder alone is better)
CPU_GENERATOR = GeneratorConfig(
    latent_channels=4,
    vae_latent_noise=0.5,
    vae_code_weight=1e-3,
    min_vae_steps=300,
    min_unet_steps=600,
)

# The cpu recipe before the fidelity work (November 2026): the KL autoencoder trained with L1
# alone on whole tiles, DDPM epsilon-prediction, fp32, no pooled prompt. Kept so that
# bench/fidelity.py can put the old recipe beside the new one at the same budget.
CPU_V1 = GeneratorConfig(
    autoencoder="kl",
    vae_channels=(16, 32, 64),
    latent_channels=4,
    vae_steps=400,
    vae_crop=0,
    vae_batch_size=0,
    vae_time_share=0.3,
    pooled_text=False,
    objective="ddpm",
    unet_lr=3e-4,
    lr_warmup_steps=0,
    lr_schedule="constant",
    ema_warmup=False,
    mixed_precision="no",
)

# paper-scale training (all of PCam train, batch 256, 100k steps) on a UNet sized to the 1,000
# tiles/s target: 29 M parameters, 5.7 GFLOP a row. The first gpu preset (100 M, (128, 256,
# 512) with attention on every level) costs 16 GFLOP a row, and its roofline on an H100 is
# 656 tiles/s even with every elementwise pass fused (bench/roofline.py)
GPU_GENERATOR = GeneratorConfig(
    vae_channels=(64, 128),
    vae_encoder_blocks=(2, 3),
    vae_decoder_blocks=(3, 4),
    vae_steps=20000,
    vae_batch_size=256,
    unet_channels=(128, 192, 256),
    unet_attention=(False, False, True),
    unet_layers_per_block=2,
    attention_head_dim=64,
    unet_steps=100000,
    batch_size=256,
    unet_lr=2e-4,
    lr_warmup_steps=1000,
    lr_schedule="cosine",
    checkpoint_every=2000,
)

TINY_CLASSIFIER = ClassifierConfig(
    channels=(8, 8, 16), steps=12, batch_size=8, warmup_steps=2, max_minutes=None
)
CPU_CLASSIFIER = ClassifierConfig()
GPU_CLASSIFIER = ClassifierConfig(
    channels=(32, 64, 128, 256, 512),
    steps=20000,
    batch_size=256,
    max_minutes=60.0,
    mixed_precision="bf16",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", TINY_GENERATOR, TINY_CLASSIFIER, 12, 8, None, 3, 3.0),
        Preset("cpu", CPU_GENERATOR, CPU_CLASSIFIER, 600, 300, 1000, 33, 60.0),
        Preset("cpu-v1", CPU_V1, CPU_CLASSIFIER, 600, 300, 1000, 33, 60.0),
        Preset("gpu", GPU_GENERATOR, GPU_CLASSIFIER, 3000, 5000, None, 33, 600.0),
    )
}
