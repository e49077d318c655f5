"""Sampling from a trained generator folder: prompts and per-tile seeds in, uint8 tiles out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from generation.ldm import sd
from generation.ldm.autoencoder import TileAutoencoder
from generation.ldm.codec import LatentCodec, to_unit
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS, STOCHASTIC, GeneratorConfig
from generation.ldm.digest import files_sha256
from generation.ldm.models import edm_scheduler, sampling_scheduler, training_scheduler
from generation.ldm.text import FrozenTextEncoder, pooled, trim_padding

META = "histostudy.json"
STEP_NOISE_OFFSET = 1 << 40  # seeds of a stochastic sampler's per-step noise


class PipelineError(ValueError):
    """A generator folder cannot be loaded; the message names the file."""


def weights_checksum(directory: Path) -> str:
    """SHA-256 over the weight files of a generator folder (names and bytes, sorted)."""
    files = [p for p in directory.rglob("*.safetensors") if p.is_file()]
    if not files:
        raise PipelineError(f"{directory}: no weight files (*.safetensors)")
    return files_sha256(directory, files)


class TilePipeline:
    def __init__(
        self,
        directory: Path,
        device: torch.device,
        text: FrozenTextEncoder | None = None,
        precision: str = "fp32",
        compiled: bool = False,
    ) -> None:
        meta_path = directory / META
        try:
            self.meta = json.loads(meta_path.read_text())
            self.config = GeneratorConfig.from_json(json.dumps(self.meta["config"]))
            self.unet = UNet2DConditionModel.from_pretrained(directory / "unet").to(device).eval()
            if self.config.backbone == "sd-finetune":
                self._load_stable_diffusion_parts(device, text)
            else:
                kind = TileAutoencoder if self.config.autoencoder == "residual" else AutoencoderKL
                self.vae = kind.from_pretrained(directory / "vae").to(device).eval()
                self.schedule = dict(
                    edm_scheduler(self.config).config
                    if self.config.objective == "edm"
                    else training_scheduler(self.config).config
                )
                self.latent_shape = (self.config.latent_channels, self.config.latent_size)
                self.text = text or FrozenTextEncoder(max_tokens=self.config.text_max_tokens)
        except PipelineError:
            raise
        except FileNotFoundError as exc:
            raise PipelineError(
                f"{directory}: not a generator folder ({exc.filename} missing)"
            ) from exc
        except (OSError, ValueError, KeyError, json.JSONDecodeError, RuntimeError) as exc:
            raise PipelineError(f"{directory}: corrupt generator files ({exc})") from exc
        if precision not in ("fp32", "bf16"):
            raise PipelineError(f"precision {precision!r}: expected fp32 or bf16")
        self.precision = precision
        self.device = device
        self.codec = LatentCodec.from_meta(self.vae, self.meta)
        if self.codec.deterministic and not self.codec.fitted:
            raise PipelineError(f"{meta_path}: no latent_shift / latent_scale for the autoencoder")
        self.pooled = getattr(self.unet.config, "class_embed_type", None) == "projection"
        if device.type == "cuda":  # cuDNN's convolutions are fastest on NHWC tensors
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        # torch.compile fuses the many elementwise passes (group norm, SiLU, residual adds)
        # that make up most of the memory traffic (bench/roofline.py); the first batch of each
        # shape compiles, a minute or two (a last, smaller batch and each new prompt length,
        # rounded up to 16 tokens, are new shapes), so it pays off on large cohorts only
        self.compiled = compiled
        self._unet = torch.compile(self.unet) if compiled else self.unet
        self._decode = torch.compile(self.codec.decode) if compiled else self.codec.decode

    def _load_stable_diffusion_parts(self, device: torch.device, text) -> None:
        """The frozen VAE, text encoder and schedule from the base folder the UNet was tuned
        from, after checking that folder is unchanged since training."""
        base = Path(self.config.base_model)
        try:
            if sd.base_checksum(base) != self.meta.get("base_sha256"):
                raise PipelineError(
                    f"base model {base} differs from the one this generator was fine-tuned from "
                    "(its checksum changed); restore that folder"
                )
            self.vae = sd.load_vae(base).to(device)
            self.schedule = sd.load_scheduler_config(base)
            self.text = text or sd.ClipPromptEncoder(base, device=str(device))
        except sd.BaseModelError as exc:
            raise PipelineError(str(exc)) from exc
        side = self.config.sd_resolution // sd.vae_factor(self.vae)
        self.latent_shape = (self.unet.config.in_channels, side)

    def initial_latents(self, seeds: list[int]) -> torch.Tensor:
        """One latent per seed, drawn on the CPU so a tile's noise does not depend on its batch."""
        c, s = self.latent_shape
        noise = [
            torch.randn((c, s, s), generator=torch.Generator().manual_seed(int(x))) for x in seeds
        ]
        return torch.stack(noise).to(self.device)  # (B, 4, 24, 24) compact, (B, 4, 64, 64) SD 512

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        steps: int = SAMPLING_STEPS,
        guidance: float = GUIDANCE,
        scheduler: str = "dpm++",
        batch_size: int = 64,
    ) -> np.ndarray:
        """(N, 96, 96, 3) uint8 tiles, one per (prompt, seed)."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        out = [
            self._batch(
                prompts[i : i + batch_size], seeds[i : i + batch_size], steps, guidance, scheduler
            )
            for i in range(0, len(prompts), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, 96, 96, 3), np.uint8)

    def _batch(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, name: str
    ) -> np.ndarray:
        sched = sampling_scheduler(name, self.schedule)
        sched.set_timesteps(steps, device=self.device)
        latents = self.initial_latents(seeds) * sched.init_noise_sigma
        cond, cond_mask = self.text.encode(prompts)
        uncond, uncond_mask = self.text.encode([""] * len(prompts))
        states, mask = torch.cat([uncond, cond]), torch.cat([uncond_mask, cond_mask])
        summary = pooled(states, mask).to(self.device) if self.pooled else None  # (2B, 384)
        states, mask = trim_padding(
            states,
            mask,
            multiple=16 if self.compiled else 1,  # few lengths: few recompilations
        )
        # a stochastic sampler's fresh noise, one generator per tile seeded from its seed (on
        # another stream than the initial latents): a tile's noise does not depend on its batch
        noise = (
            [torch.Generator().manual_seed(int(s) + STEP_NOISE_OFFSET) for s in seeds]
            if name in STOCHASTIC
            else None
        )
        states = states.to(self.device)  # (2B, T, D): 384 MiniLM, 768 CLIP
        mask = None if mask is None else mask.to(self.device)
        for t in sched.timesteps:
            model_in = sched.scale_model_input(torch.cat([latents, latents]), t)
            with self._autocast():
                pred = self._unet(
                    model_in,
                    t,
                    encoder_hidden_states=states,
                    encoder_attention_mask=mask,
                    class_labels=summary,
                ).sample.float()
            pred_uncond, pred_cond = pred.chunk(2)
            pred = pred_uncond + guidance * (pred_cond - pred_uncond)
            latents = sched.step(pred, t, latents, generator=noise).prev_sample
        with self._autocast():
            images = self._decode(latents.to(self.vae.dtype))
        return self._to_uint8(images)

    def _autocast(self):
        """bf16: the networks run under autocast; the sampler's arithmetic stays in fp32."""
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )

    def _to_uint8(self, images: torch.Tensor) -> np.ndarray:
        images = sd.downsample(images.float(), self.config.image_size)  # (B, 3, 96, 96), ~[-1, 1]
        images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return images.permute(0, 2, 3, 1).cpu().numpy()

    @torch.inference_mode()
    def reconstruct(self, tiles: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, 96, 96, 3) uint8 -> the autoencoder's encode-decode of each tile (the code, or a
        KL posterior's mean), at the base model's resolution for sd-finetune: the ceiling that
        no denoiser on this autoencoder can pass."""
        out = []
        for start in range(0, len(tiles), batch_size):
            x = to_unit(tiles[start : start + batch_size])  # (B, 3, 96, 96) in [-1, 1]
            if self.config.backbone == "sd-finetune":
                x = sd.upsample(x, self.config.sd_resolution)
            with self._autocast():
                images = self.codec.decode(self.codec.encode(x.to(self.device, self.vae.dtype)))
            out.append(self._to_uint8(images))
        return np.concatenate(out) if out else np.zeros((0, 96, 96, 3), np.uint8)
