"""The compact backbone: a diffusers AutoencoderKL (96 px -> 24x24x4) and a conditional UNet."""

from __future__ import annotations

from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    UNet2DConditionModel,
)

from generation.ldm.config import GeneratorConfig

SCHEDULERS = ("dpm++", "ddim")


def _groups(channels: tuple[int, ...]) -> int:
    return min(32, min(channels))


def build_autoencoder(config: GeneratorConfig) -> AutoencoderKL:
    levels = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=config.vae_channels,
        layers_per_block=config.vae_layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=_groups(config.vae_channels),
        sample_size=config.image_size,
    )


def build_unet(config: GeneratorConfig) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.unet_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.unet_attention))
    return UNet2DConditionModel(
        sample_size=config.latent_size,
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=config.unet_channels,
        layers_per_block=config.unet_layers_per_block,
        cross_attention_dim=config.text_dim,
        # diffusers reads `attention_head_dim` as the number of heads (a known naming quirk):
        # pass heads per level so each head really is attention_head_dim wide
        attention_head_dim=tuple(
            max(1, c // config.attention_head_dim) for c in config.unet_channels
        ),
        norm_num_groups=_groups(config.unet_channels),
    )


def training_scheduler(config: GeneratorConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule="scaled_linear",
        prediction_type=config.prediction_type,
    )


def sampling_scheduler(name: str, train: dict):
    """A sampler for the noise schedule `train` (a training scheduler's config) was trained on."""
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(train, algorithm_type="dpmsolver++")
    if name == "ddim":
        return DDIMScheduler.from_config(train)
    raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
