"""Training: the autoencoder first, then the denoiser on its latents, with Accelerate.

`accelerate launch manage.py train_generator ...` runs one process per GPU; each takes its
share of every batch and gradients are averaged. Checkpoints (every `checkpoint_every` steps,
written to a temporary file and renamed over the last one, so a kill leaves one or the other)
let `resume=True` continue after a kill from the last one, with the same optimizer, EMA and
random state: on one process, a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from generation.ldm import sd
from generation.ldm.config import GeneratorConfig
from generation.ldm.models import build_autoencoder, build_unet, training_scheduler
from generation.ldm.text import FrozenTextEncoder, trim_padding

CHECKPOINT = "checkpoint"
STATE = "state.pt"


@dataclass
class TrainingData:
    """Tiles (N, H, W, 3) uint8 and one prompt per tile."""

    tiles: np.ndarray
    prompts: list[str]

    def __post_init__(self) -> None:
        if len(self.tiles) != len(self.prompts) or not len(self.tiles):
            raise ValueError(f"{len(self.tiles)} tiles but {len(self.prompts)} prompts")


@dataclass
class TrainResult:
    vae_steps: int
    unet_steps: int
    seconds: float
    final_loss: float
    stopped_early: bool  # by --max-minutes
    losses: list[tuple[str, int, float]] = field(default_factory=list)


def to_unit(tiles: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 127.5 - 1


def dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random one of the 8 rotations/flips per batch: tissue has no up or left."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if torch.rand(1, generator=generator) < 0.5 else x


def sampling_weights(prompts: list[str], balance: bool) -> torch.Tensor:
    """Uniform, or inverse prompt frequency so every prompt (class x cluster) is seen equally."""
    if not balance:
        return torch.ones(len(prompts))
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p] = counts.get(p, 0) + 1
    return torch.tensor([1.0 / counts[p] for p in prompts])


class AutoencoderLoss(torch.nn.Module):
    """The autoencoder's training loss as one forward pass: under several processes the
    gradients are averaged by DistributedDataParallel, which only sees a wrapped forward()."""

    def __init__(self, vae: torch.nn.Module, kl_weight: float) -> None:
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 96, 96) in [-1, 1]
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        return F.l1_loss(recon, x) + self.kl_weight * posterior.kl().mean()


class Trainer:
    def __init__(
        self,
        config: GeneratorConfig,
        data: TrainingData,
        out_dir: Path,
        text_encoder: FrozenTextEncoder | None = None,
        log: Callable[[str], None] = print,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.data = data
        self.out_dir = out_dir
        self.log = log
        self.progress = progress
        # cpu=True without a GPU, so that `accelerate launch` on a CPU-only machine still forms
        # one process group (gloo) instead of N processes that each train alone
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available()
        )
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sd = config.backbone == "sd-finetune"
        if self.sd:  # Stable Diffusion: its VAE, text encoder and schedule frozen, UNet tuned
            base = Path(config.base_model)
            device = str(self.accelerator.device)
            self.text = text_encoder or sd.ClipPromptEncoder(base, device=device)
            self.vae = sd.load_vae(base).to(self.accelerator.device)
            self.unet = sd.load_unet(base)
            self.noise = DDPMScheduler.from_config(sd.load_scheduler_config(base))
            self.scaling_factor = float(self.vae.config.scaling_factor)
        else:
            self.text = text_encoder or FrozenTextEncoder(max_tokens=config.text_max_tokens)
            self.vae = build_autoencoder(config)
            self.unet = build_unet(config)
            self.noise = training_scheduler(config)
            self.scaling_factor = 1.0
        self.unet_opt = torch.optim.AdamW(
            self.unet.parameters(), lr=config.unet_lr, weight_decay=1e-2
        )
        self.ema = EMAModel(self.unet.parameters(), decay=config.ema_decay)
        self.vae_step = 0
        # by its step count or its share of --max-minutes; a frozen autoencoder is finished
        self.vae_finished = self.sd
        self.unet_step = 0
        self.losses: list[tuple[str, int, float]] = []
        self.weights = sampling_weights(data.prompts, config.balance)
        if self.sd:
            self.vae_loss = self.vae_opt = None
            self.unet, self.unet_opt = self.accelerator.prepare(self.unet, self.unet_opt)
        else:
            # self.vae stays the bare autoencoder (the loss module holds the same parameters)
            self.vae_opt = torch.optim.AdamW(self.vae.parameters(), lr=config.vae_lr)
            self.vae_loss, self.unet, self.vae_opt, self.unet_opt = self.accelerator.prepare(
                AutoencoderLoss(self.vae, config.vae_kl_weight),
                self.unet,
                self.vae_opt,
                self.unet_opt,
            )

    # --- batches --------------------------------------------------------------------------

    def _indices(self) -> torch.Tensor:
        """This process's share of one global batch, drawn with the seeded generator."""
        total = self.config.batch_size
        picks = torch.multinomial(self.weights, total, replacement=True, generator=self.generator)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        return picks[rank::world]

    # --- phase 1: autoencoder -------------------------------------------------------------

    def train_autoencoder(self, until: float) -> None:
        cfg, device = self.config, self.accelerator.device
        self.vae_loss.train()
        bar = tqdm(
            total=cfg.vae_steps,
            initial=self.vae_step,
            desc="autoencoder",
            disable=not (self.progress and self.accelerator.is_main_process),
        )
        with bar:
            while self.vae_step < cfg.vae_steps and not self._out_of_time(until):
                x = dihedral(to_unit(self.data.tiles[self._indices().numpy()]), self.generator)
                x = x.to(device)  # (B, 3, 96, 96)
                with self.accelerator.autocast():
                    loss = self.vae_loss(x)
                self.accelerator.backward(loss)
                self.vae_opt.step()
                self.vae_opt.zero_grad(set_to_none=True)
                self.vae_step += 1
                self._record("autoencoder", self.vae_step, loss, bar)
                if self.vae_step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()

    # --- phase 2: denoiser ----------------------------------------------------------------

    @torch.no_grad()
    def encode_latents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and std of every tile, once: the denoiser then trains on latents."""
        vae = self.vae.eval()
        means, stds = [], []
        for start in range(0, len(self.data.tiles), 256):
            x = to_unit(self.data.tiles[start : start + 256]).to(self.accelerator.device)
            dist = vae.encode(x).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
        mean, std = torch.cat(means), torch.cat(stds)  # (N, 4, 24, 24) each
        if self.unet_step == 0 or self.scaling_factor == 1.0:
            self.scaling_factor = float(1.0 / mean.std().clamp_min(1e-6))
        return mean, std

    def train_denoiser(self, until: float) -> None:
        cfg, device = self.config, self.accelerator.device
        latents = None if self.sd else self.encode_latents()
        self.unet.train()
        bar = tqdm(
            total=cfg.unet_steps,
            initial=self.unet_step,
            desc="denoiser",
            disable=not (self.progress and self.accelerator.is_main_process),
        )
        with bar:
            while self.unet_step < cfg.unet_steps and not self._out_of_time(until):
                idx = self._indices()
                z = self._latents(idx, latents)  # (B, 4, 24, 24) compact, (B, 4, 64, 64) SD 512
                prompts = [self.data.prompts[i] for i in idx.tolist()]
                drop = torch.rand(len(prompts), generator=self.generator) < cfg.cfg_dropout
                states, mask = trim_padding(
                    *self.text.encode(["" if d else p for d, p in zip(drop, prompts, strict=True)])
                )
                noise = torch.randn(z.shape, generator=self.generator).to(device)
                t = torch.randint(
                    0, cfg.num_train_timesteps, (len(z),), generator=self.generator
                ).to(device)
                noisy = self.noise.add_noise(z, noise, t)
                target = (
                    noise
                    if cfg.prediction_type == "epsilon"
                    else self.noise.get_velocity(z, noise, t)
                )
                with self.accelerator.autocast():
                    pred = self.unet(
                        noisy,
                        t,
                        encoder_hidden_states=states.to(device),
                        encoder_attention_mask=None if mask is None else mask.to(device),
                    ).sample
                    loss = F.mse_loss(pred.float(), target.float())
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(self.unet.parameters(), 1.0)
                self.unet_opt.step()
                self.unet_opt.zero_grad(set_to_none=True)
                self.ema.step(self.accelerator.unwrap_model(self.unet).parameters())
                self.unet_step += 1
                self._record("denoiser", self.unet_step, loss, bar)
                if self.unet_step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()

    def _latents(
        self, idx: torch.Tensor, precomputed: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """Scaled latents of the tiles `idx`, randomly rotated or flipped, on the device: drawn
        from the precomputed posteriors (compact), or encoded now at the base model's
        resolution by its frozen VAE (sd-finetune; too large to keep for every tile)."""
        if precomputed is None:
            x = to_unit(self.data.tiles[idx.numpy()])
            x = sd.upsample(x, self.config.sd_resolution).to(self.accelerator.device)
            with torch.no_grad():
                z = self.vae.encode(x).latent_dist.sample() * self.scaling_factor
            return dihedral(z, self.generator)
        mean, std = precomputed
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=self.generator)
        return dihedral(z * self.scaling_factor, self.generator).to(self.accelerator.device)

    def _out_of_time(self, until: float) -> bool:
        """Whether the time is up, agreed by every process: one that stopped alone would leave
        the others waiting in their next gradient all-reduce for ever."""
        late = time.monotonic() >= until
        if self.accelerator.num_processes == 1:
            return late
        flag = torch.tensor([float(late)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _record(self, phase: str, step: int, loss: torch.Tensor, bar: tqdm) -> None:
        value = float(self.accelerator.gather(loss.detach().reshape(1)).mean())
        if not math.isfinite(value):
            raise FloatingPointError(f"{phase} loss became {value} at step {step}; lower the lr")
        self.losses.append((phase, step, value))
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update()

    # --- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Everything needed to resume, written to a temporary file and renamed over the last
        checkpoint: a rename replaces a file atomically, so a kill leaves the old or the new."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        folder = self.out_dir / CHECKPOINT
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{STATE}.tmp"
        torch.save(
            {
                "vae": None if self.sd else self.vae.state_dict(),  # a frozen one is not saved
                "unet": self.accelerator.unwrap_model(self.unet).state_dict(),
                "vae_opt": None if self.sd else self.vae_opt.state_dict(),
                "unet_opt": self.unet_opt.state_dict(),
                "ema": self.ema.state_dict(),
                "vae_step": self.vae_step,
                "vae_finished": self.vae_finished,
                "unet_step": self.unet_step,
                "scaling_factor": self.scaling_factor,
                "generator": self.generator.get_state(),
                # torch's global generators: the autoencoder samples its posterior from them
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "losses": self.losses,
                "config": self.config.to_json(),
            },
            tmp,
        )
        tmp.replace(folder / STATE)

    def load_checkpoint(self) -> bool:
        path = self.out_dir / CHECKPOINT / STATE
        if not path.is_file():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError) as exc:
            raise ValueError(
                f"{path}: corrupt checkpoint ({exc}); delete it to start over"
            ) from exc
        if state["config"] != self.config.to_json():
            raise ValueError(
                f"{path}: the checkpoint was trained with another config; use it or delete it"
            )
        if not self.sd:
            self.vae.load_state_dict(state["vae"])
            self.vae_opt.load_state_dict(state["vae_opt"])
        self.accelerator.unwrap_model(self.unet).load_state_dict(state["unet"])
        self.unet_opt.load_state_dict(state["unet_opt"])
        self.ema.load_state_dict(state["ema"])
        self.vae_step, self.unet_step = state["vae_step"], state["unet_step"]
        self.vae_finished = state["vae_finished"]
        self.scaling_factor = state["scaling_factor"]
        self.generator.set_state(state["generator"])
        if "torch_rng" in state:  # absent from checkpoints written before it was saved
            torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.losses = [tuple(x) for x in state["losses"]]
        return True

    # --- the whole run --------------------------------------------------------------------

    def run(self, max_minutes: float | None = None, resume: bool = False) -> TrainResult:
        started = time.monotonic()
        until = started + 60 * max_minutes if max_minutes else math.inf
        if resume and self.load_checkpoint():
            self.log(f"resumed at autoencoder step {self.vae_step}, denoiser step {self.unet_step}")
        if not self.vae_finished:
            vae_until = started + (until - started) * self.config.vae_time_share
            self.train_autoencoder(min(until, vae_until) if max_minutes else until)
            # the denoiser learns this autoencoder's latents, so it is final from here on
            self.vae_finished = self.vae_step >= self.config.vae_steps or bool(max_minutes)
            self.save_checkpoint()
        if self.vae_finished:
            self.train_denoiser(until)
        self.save_checkpoint()
        done = self.vae_finished and self.unet_step >= self.config.unet_steps
        return TrainResult(
            vae_steps=self.vae_step,
            unet_steps=self.unet_step,
            seconds=time.monotonic() - started,
            final_loss=self.losses[-1][2] if self.losses else math.nan,
            stopped_early=not done,
            losses=self.losses,
        )

    def export(self, directory: Path, extra: dict) -> None:
        """Save a loadable pipeline folder: vae/, unet/ (EMA weights), histostudy.json, loss.csv."""
        if not self.accelerator.is_main_process:
            return
        directory.mkdir(parents=True, exist_ok=True)
        if self.sd:  # the VAE and text encoder stay in the base folder, checked by checksum
            extra = {**extra, "base_sha256": sd.base_checksum(Path(self.config.base_model))}
        else:
            self.vae.save_pretrained(directory / "vae")
        trained = self.accelerator.unwrap_model(self.unet)
        unet = type(trained).from_config(trained.config)  # a copy to hold the EMA weights
        unet.load_state_dict(trained.state_dict())
        self.ema.copy_to(unet.parameters())
        unet.save_pretrained(directory / "unet")
        meta = {
            "config": json.loads(self.config.to_json()),
            "scaling_factor": self.scaling_factor,
            "vae_steps": self.vae_step,
            "unet_steps": self.unet_step,
            **extra,
        }
        (directory / "histostudy.json").write_text(json.dumps(meta, indent=2))
        with (directory / "loss.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phase", "step", "loss"])
            writer.writerows(self.losses)
