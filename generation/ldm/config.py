"""One typed config per generator; presets `tiny` (tests), `cpu` (demo), `gpu` (paper scale)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("compact", "sd-finetune")
AUTOENCODERS = ("residual", "kl")
OBJECTIVES = ("edm", "ddpm")
PREDICTION_TYPES = ("epsilon", "v_prediction")
PRECISIONS = ("auto", "no", "bf16", "fp16")
# sampling defaults, for every command and function that generates tiles
SAMPLING_STEPS = 25
GUIDANCE = 3.0
# dpm++: DPM-Solver++ 2M, deterministic; dpm++-sde: its stochastic (SDE) variant, which
# injects fresh noise each step and so corrects part of an imperfect denoiser's error
# (Karras et al. 2022, section 4); ddim: deterministic first order
SCHEDULERS = ("dpm++", "dpm++-sde", "ddim")
STOCHASTIC = ("dpm++-sde",)


@dataclass(frozen=True)
class SamplingConfig:
    """How tiles are drawn from a trained generator: solver steps, classifier-free guidance
    scale and solver. Each cohort records it, and each tile's provenance."""

    steps: int = SAMPLING_STEPS
    guidance: float = GUIDANCE
    scheduler: str = "dpm++"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps {self.steps}: expected at least 1")
        if self.guidance < 0:
            raise ValueError(f"guidance {self.guidance}: expected 0 or more")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"unknown scheduler {self.scheduler!r}; expected one of {', '.join(SCHEDULERS)}"
            )

    def replace(self, **changes: Any) -> SamplingConfig:
        """A copy with the given fields changed; None leaves a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class AfterTraining:
    """Work that must still fit a deadline once training ends, so that a run capped by a
    deadline (the demo's) trains for what it leaves: `tiles` to sample at `steps` solver steps
    with guidance (two denoiser rows a tile a step) and decode, and `seconds` of other work
    that the caller measured (the demo's Inception features)."""

    tiles: int = 0
    steps: int = SAMPLING_STEPS
    seconds: float = 0.0


# named sampling settings: ours (measured on the cpu preset, docs/BENCHMARKS.md) and the
# paper's (Osorio et al.: 50 steps, guidance 7.5, for a fine-tuned Stable Diffusion)
SAMPLING = {
    "default": SamplingConfig(),
    "paper": SamplingConfig(steps=50, guidance=7.5),
}


# What a config written before a field existed meant by it: generators trained earlier load
# as they were trained (a KL autoencoder, the DDPM objective, no pooled prompt, fp32).
LEGACY = {
    "autoencoder": "kl",
    "objective": "ddpm",
    "pooled_text": False,
    "vae_crop": 0,
    "vae_batch_size": 0,
    "vae_latent_noise": 0.0,
    "vae_fft_weight": 0.0,
    "vae_scale_weight": 0.0,
    "vae_amplitude_weight": 0.0,
    "vae_code_weight": 0.0,
    "lr_warmup_steps": 0,
    "lr_schedule": "constant",
    "ema_warmup": False,
    "min_vae_steps": 0,
    "min_unet_steps": 0,
}


@dataclass(frozen=True)
class GeneratorConfig:
    backbone: str = "compact"
    image_size: int = 96
    # autoencoder. residual: TileAutoencoder, one 2x downsampling per entry of vae_channels
    # (two take 96 px to 24x24); kl: the diffusers AutoencoderKL of earlier generators,
    # len(vae_channels) - 1 downsamplings
    autoencoder: str = "residual"
    vae_channels: tuple[int, ...] = (64, 128)
    vae_layers_per_block: int = 1  # kl only
    vae_encoder_blocks: tuple[int, ...] = (1, 2)  # residual only, per level
    vae_decoder_blocks: tuple[int, ...] = (2, 3)
    latent_channels: int = 8
    vae_steps: int = 3000
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6  # kl only
    vae_crop: int = 48  # train on random crops of this side (convolutions do not care); 0: whole
    vae_batch_size: int = 64  # 0: batch_size
    # residual only: decoder trained on codes plus noise of up to this share of their std
    vae_latent_noise: float = 0.0
    # residual only: weight of an L1 loss on the 2-D Fourier coefficients (orthonormal), which
    # weighs fine detail that pixel L1 lets blur (bench/autoencoder.py measures it)
    vae_fft_weight: float = 0.0
    # residual only: weight of the scale-equivariance term (objectives.scale_equivariance_l1):
    # codes averaged down 2x or 4x must decode to the tile averaged down alike
    vae_scale_weight: float = 0.0
    # residual only: weight of an L1 loss on local amplitude spectra
    # (objectives.local_amplitude_l1), which asks for detail without asking where it lies
    vae_amplitude_weight: float = 0.0
    # residual only: weight of the mean squared code (objectives.code_penalty), which holds the
    # codes' scale: without it Adam grows them without bound (std 1 to 53 in 500 steps)
    vae_code_weight: float = 0.0
    # denoiser; attention per level (the first, 24x24, level has none on CPU presets)
    unet_channels: tuple[int, ...] = (64, 96, 128)
    unet_attention: tuple[bool, ...] = (False, False, True)
    unet_layers_per_block: int = 1
    attention_head_dim: int = 32
    pooled_text: bool = True  # the mean prompt embedding joins the timestep embedding
    # of --max-minutes for the autoencoder, at most, unless its set steps need more (train.py)
    vae_time_share: float = 0.25
    unet_steps: int = 20000
    unet_lr: float = 1e-3
    lr_warmup_steps: int = 100
    lr_schedule: str = "cosine"  # or "constant"; cosine: to 10% over the planned steps
    batch_size: int = 32
    # edm: Karras et al. 2022 preconditioning, log-normal noise levels, its loss weight;
    # ddpm: the DDPM schedule with prediction_type (and min_snr_gamma weighting if > 0)
    objective: str = "edm"
    prediction_type: str = "epsilon"
    min_snr_gamma: float = 0.0
    edm_p_mean: float = -0.5  # log-normal noise levels, shifted for unit-variance latents
    edm_p_std: float = 1.2
    num_train_timesteps: int = 1000
    cfg_dropout: float = 0.1  # share of empty prompts, for classifier-free guidance
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay 1 - (1 + step)^-3/4 up to ema_decay: short runs average less
    mixed_precision: str = "auto"  # bf16 where it is faster (ldm.precision), else fp32
    text_max_tokens: int = 64
    text_dim: int = 384  # MiniLM-L6 hidden size
    checkpoint_every: int = 500
    balance: bool = False  # the paper's class-and-prompt-balanced sampling
    # a time budget that buys fewer steps than these is an error, not a generator
    min_vae_steps: int = 0
    min_unet_steps: int = 0
    seed: int = 0
    base_model: str = ""  # sd-finetune: local diffusers Stable Diffusion folder
    sd_resolution: int = 512  # sd-finetune: tiles upsampled to this size (the paper: 512)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r}: expected one of {', '.join(BACKBONES)}")
        for name, allowed in (
            ("autoencoder", AUTOENCODERS),
            ("objective", OBJECTIVES),
            ("mixed_precision", PRECISIONS),
            ("lr_schedule", ("constant", "cosine")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r}: expected one of {allowed}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type {self.prediction_type!r}: expected {PREDICTION_TYPES}"
            )
        if len(self.unet_attention) != len(self.unet_channels):
            raise ValueError("unet_attention needs one flag per entry of unet_channels")
        if self.backbone == "sd-finetune" and not self.base_model:
            raise ValueError("the sd-finetune backbone needs base_model (--base-model DIR)")
        if self.autoencoder == "residual" and not (
            len(self.vae_channels) == len(self.vae_encoder_blocks) == len(self.vae_decoder_blocks)
        ):
            raise ValueError("vae_encoder_blocks and vae_decoder_blocks need one entry a level")
        if self.image_size % self.downsampling:
            raise ValueError(f"image_size {self.image_size} must divide by the VAE's downsampling")
        if self.vae_crop and (self.vae_crop > self.image_size or self.vae_crop % self.downsampling):
            raise ValueError(
                f"vae_crop {self.vae_crop}: at most image_size and a multiple of "
                f"{self.downsampling}"
            )

    @property
    def downsampling(self) -> int:
        levels = len(self.vae_channels) - (self.autoencoder == "kl")
        return 2**levels

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsampling

    def replace(self, **overrides: Any) -> GeneratorConfig:
        """A copy with fields overridden; values given as text (from a command line) are parsed."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        parsed = {}
        for key, value in overrides.items():
            if key not in fields:
                raise ValueError(
                    f"unknown config field {key!r}; known: {', '.join(sorted(fields))}"
                )
            parsed[key] = _parse(value, getattr(self, key)) if isinstance(value, str) else value
        return dataclasses.replace(self, **parsed)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeneratorConfig:
        data = {**LEGACY, **json.loads(text)}
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


def _parse(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        return text.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, tuple):
        items = [t for t in text.replace("(", "").replace(")", "").split(",") if t.strip()]
        kind = type(current[0]) if current else int
        return tuple(_parse(t, kind()) if kind is bool else kind(t) for t in items)
    return type(current)(text)
