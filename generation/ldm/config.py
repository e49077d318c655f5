"""One typed config per generator; presets `tiny` (tests), `cpu` (demo), `gpu` (paper scale)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("compact", "sd-finetune")
PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class GeneratorConfig:
    backbone: str = "compact"
    image_size: int = 96
    # autoencoder: len(vae_channels) - 1 downsamplings; three levels take 96 px to 24x24 latents
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_layers_per_block: int = 1
    latent_channels: int = 4
    vae_steps: int = 400
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    # denoiser; attention per level (the first, 24x24, level has none on CPU presets)
    unet_channels: tuple[int, ...] = (64, 96, 128)
    unet_attention: tuple[bool, ...] = (False, False, True)
    unet_layers_per_block: int = 1
    attention_head_dim: int = 32
    vae_time_share: float = 0.3  # of --max-minutes, at most, for the autoencoder
    unet_steps: int = 20000
    unet_lr: float = 3e-4
    batch_size: int = 32
    prediction_type: str = "epsilon"
    num_train_timesteps: int = 1000
    cfg_dropout: float = 0.1  # share of empty prompts, for classifier-free guidance
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # "bf16" or "fp16" on GPU
    text_max_tokens: int = 64
    text_dim: int = 384  # MiniLM-L6 hidden size
    checkpoint_every: int = 500
    balance: bool = False  # the paper's class-and-prompt-balanced sampling
    seed: int = 0
    base_model: str = ""  # sd-finetune: local diffusers Stable Diffusion folder
    sd_resolution: int = 512  # sd-finetune: tiles upsampled to this size (the paper: 512)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r}: expected one of {', '.join(BACKBONES)}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type {self.prediction_type!r}: expected {PREDICTION_TYPES}"
            )
        if len(self.unet_attention) != len(self.unet_channels):
            raise ValueError("unet_attention needs one flag per entry of unet_channels")
        if self.backbone == "sd-finetune" and not self.base_model:
            raise ValueError("the sd-finetune backbone needs base_model (--base-model DIR)")
        if self.image_size % 2 ** (len(self.vae_channels) - 1):
            raise ValueError(f"image_size {self.image_size} must divide by the VAE's downsampling")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

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
        data = json.loads(text)
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


PRESETS: dict[str, GeneratorConfig] = {
    "tiny": GeneratorConfig(
        vae_channels=(8, 16, 16),
        unet_channels=(16, 32, 32),
        attention_head_dim=8,
        vae_steps=10,
        unet_steps=10,
        batch_size=8,
        checkpoint_every=5,
        ema_decay=0.9,
    ),
    "cpu": GeneratorConfig(),
    # paper-scale training (all of PCam train, batch 256, 100k steps) on a UNet sized to the
    # 1,000 tiles/s target: 29 M parameters, 5.7 GFLOP a row. The first gpu preset (100 M,
    # (128, 256, 512) with attention on every level) costs 16 GFLOP a row, and its roofline
    # on an H100 is 656 tiles/s even with every elementwise pass fused (bench/roofline.py)
    "gpu": GeneratorConfig(
        vae_channels=(64, 128, 128),
        vae_layers_per_block=2,
        vae_steps=6000,
        unet_channels=(128, 192, 256),
        unet_attention=(False, False, True),
        unet_layers_per_block=2,
        attention_head_dim=64,
        unet_steps=100000,
        batch_size=256,
        unet_lr=2e-4,
        mixed_precision="bf16",
        checkpoint_every=2000,
    ),
}
