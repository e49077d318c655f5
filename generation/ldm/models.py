"""The compact backbone: a diffusers AutoencoderKL (96 px -> 24x24x4) and a conditional UNet."""

from __future__ import annotations

from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EDMDPMSolverMultistepScheduler,
    EDMEulerScheduler,
    UNet2DConditionModel,
)

from generation.ldm.autoencoder import TileAutoencoder
from generation.ldm.config import SCHEDULERS, GeneratorConfig

DPM_ALGORITHMS = {"dpm++": "dpmsolver++", "dpm++-sde": "sde-dpmsolver++"}  # diffusers' names
# EDM's noise range (Karras et al. 2022) for latents standardised to unit variance
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_SIGMA_DATA = 0.002, 80.0, 1.0


def _groups(channels: tuple[int, ...]) -> int:
    return min(32, min(channels))


def build_autoencoder(config: GeneratorConfig) -> TileAutoencoder | AutoencoderKL:
    if config.autoencoder == "residual":
        return TileAutoencoder(
            channels=config.vae_channels,
            latent_channels=config.latent_channels,
            encoder_blocks=config.vae_encoder_blocks,
            decoder_blocks=config.vae_decoder_blocks,
        )
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
        # the pooled prompt embedding, projected and added to the timestep embedding: a
        # global conditioning signal the denoiser picks up far sooner than cross-attention
        **(
            {
                "class_embed_type": "projection",
                "projection_class_embeddings_input_dim": config.text_dim,
            }
            if config.pooled_text
            else {}
        ),
    )


def training_scheduler(config: GeneratorConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule="scaled_linear",
        prediction_type=config.prediction_type,
    )


def edm_scheduler(config: GeneratorConfig) -> EDMDPMSolverMultistepScheduler:
    """The EDM sampler (DPM-Solver++ 2M on Karras sigmas) for an `edm` denoiser."""
    return EDMDPMSolverMultistepScheduler(
        sigma_min=EDM_SIGMA_MIN,
        sigma_max=EDM_SIGMA_MAX,
        sigma_data=EDM_SIGMA_DATA,
        num_train_timesteps=config.num_train_timesteps,
        prediction_type="epsilon",  # EDM's F-parameterisation: c_skip x + c_out F
    )


def sampling_scheduler(name: str, train: dict):
    """A sampler for the noise schedule `train` (a training scheduler's config) was trained on."""
    if "sigma_data" in train:  # an `edm` denoiser (DDPM schedules have no sigma_data)
        if name in DPM_ALGORITHMS:
            return EDMDPMSolverMultistepScheduler.from_config(
                train, algorithm_type=DPM_ALGORITHMS[name]
            )
        if name == "ddim":  # deterministic Euler on the same sigmas: DDIM's EDM counterpart
            return EDMEulerScheduler.from_config(train)
        raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
    if name in DPM_ALGORITHMS:
        return DPMSolverMultistepScheduler.from_config(train, algorithm_type=DPM_ALGORITHMS[name])
    if name == "ddim":
        return DDIMScheduler.from_config(train)
    raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
