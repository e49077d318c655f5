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
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from generation.ldm import sd
from generation.ldm.budget import TimeBudget
from generation.ldm.checkpoint import Checkpoints
from generation.ldm.codec import LatentCodec, to_unit
from generation.ldm.config import AfterTraining, GeneratorConfig
from generation.ldm.data import TrainingData, TrainResult, dihedral, sampling_weights
from generation.ldm.models import (
    EDM_SIGMA_DATA,
    build_autoencoder,
    build_unet,
    training_scheduler,
)
from generation.ldm.objectives import AutoencoderLoss, learning_rate
from generation.ldm.precision import resolve_precision
from generation.ldm.text import FrozenTextEncoder, pooled, trim_padding


class Trainer(TimeBudget, Checkpoints):
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
        cuda = torch.cuda.is_available()
        self.precision = resolve_precision(config.mixed_precision, cuda)
        # cpu=True without a GPU, so that `accelerate launch` on a CPU-only machine still forms
        # one process group (gloo) instead of N processes that each train alone
        self.accelerator = Accelerator(mixed_precision=self.precision, cpu=not cuda)
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
            self.codec = LatentCodec(self.vae, float(self.vae.config.scaling_factor))
        else:
            self.text = text_encoder or FrozenTextEncoder(max_tokens=config.text_max_tokens)
            self.vae = build_autoencoder(config)
            self.unet = build_unet(config)
            self.noise = training_scheduler(config)
            self.codec = LatentCodec(self.vae)
        self.edm = config.objective == "edm" and not self.sd
        self.unet_opt = torch.optim.AdamW(
            self.unet.parameters(), lr=config.unet_lr, weight_decay=1e-2
        )
        self.ema = EMAModel(
            self.unet.parameters(),
            decay=config.ema_decay,
            use_ema_warmup=config.ema_warmup,
            inv_gamma=1.0,
            power=3 / 4,
        )
        self.vae_step = 0
        # by its step count or its share of --max-minutes; a frozen autoencoder is finished
        self.vae_finished = self.sd
        self.unet_step = 0
        # steps each phase will take: the config's, or what a time budget buys at the speed
        # measured on this machine (fixed once, so the learning-rate schedule can end on time)
        self.plan = {"autoencoder": config.vae_steps, "denoiser": config.unet_steps}
        self.planned = {"autoencoder": False, "denoiser": False}
        self.probed = (0.0, 0.0)  # seconds a step of each phase, once autoencoder_share probed
        self.encoding_seconds = 0.0  # of every tile between the phases, probed alike
        self.stretched = False  # whether the autoencoder trained past its share of the time
        self.losses: list[tuple[str, int, float]] = []
        self.weights = sampling_weights(data.prompts, config.balance)
        if self.sd:
            self.vae_loss = self.vae_opt = None
            self.unet, self.unet_opt = self.accelerator.prepare(self.unet, self.unet_opt)
        else:
            # self.vae stays the bare autoencoder (the loss module holds the same parameters);
            # the KL autoencoder of earlier generators keeps the optimiser it was trained with
            residual = config.autoencoder == "residual"
            self.vae_opt = torch.optim.AdamW(
                self.vae.parameters(),
                lr=config.vae_lr,
                betas=(0.9, 0.99) if residual else (0.9, 0.999),
                weight_decay=0.0 if residual else 1e-2,
            )
            self.vae_loss, self.unet, self.vae_opt, self.unet_opt = self.accelerator.prepare(
                AutoencoderLoss.of(self.vae, config),
                self.unet,
                self.vae_opt,
                self.unet_opt,
            )

    # --- batches --------------------------------------------------------------------------

    def _indices(self, total: int | None = None) -> torch.Tensor:
        """This process's share of one global batch, drawn with the seeded generator."""
        total = total or self.config.batch_size
        picks = torch.multinomial(self.weights, total, replacement=True, generator=self.generator)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        return picks[rank::world]

    def _autoencoder_batch(self) -> torch.Tensor:
        """Tiles, or random crops of vae_crop px (at multiples of the downsampling, so a crop's
        code is the tile code's crop), each rotated or flipped: (B, 3, crop, crop)."""
        cfg = self.config
        x = to_unit(self.data.tiles[self._indices(cfg.vae_batch_size or None).numpy()])
        crop, size = cfg.vae_crop, cfg.image_size
        if crop and crop < size:
            grid = (size - crop) // cfg.downsampling + 1
            offsets = torch.randint(0, grid, (len(x), 2), generator=self.generator)
            offsets *= cfg.downsampling
            x = torch.stack(
                [
                    t[:, i : i + crop, j : j + crop]
                    for t, (i, j) in zip(x, offsets.tolist(), strict=True)
                ]
            )
        return dihedral(x, self.generator)

    # --- budgets --------------------------------------------------------------------------

    def _lr(self, optimizer, base: float, phase: str, step: int) -> None:
        lr = learning_rate(
            base, step, self.plan[phase], self.config.lr_warmup_steps, self.config.lr_schedule
        )
        for group in optimizer.param_groups:
            group["lr"] = lr

    # --- phase 1: autoencoder -------------------------------------------------------------

    def train_autoencoder(self, until: float, latest: float | None = None) -> None:
        """Steps up to the plan, until `until` (or `latest`: autoencoder_out_of_time)."""
        cfg = self.config
        device = self.accelerator.device
        self.vae_loss.train()
        session: list[float] = []
        bar = tqdm(
            total=self.plan["autoencoder"],
            initial=self.vae_step,
            desc="autoencoder",
            disable=not (self.progress and self.accelerator.is_main_process),
        )
        with bar:
            while self.vae_step < self.plan["autoencoder"] and not self.autoencoder_out_of_time(
                until, latest
            ):
                x = self._autoencoder_batch().to(device)  # (B, 3, crop, crop)
                self._lr(self.vae_opt, cfg.vae_lr, "autoencoder", self.vae_step)
                with self.accelerator.autocast():
                    loss = self.vae_loss(x)
                self.accelerator.backward(loss)
                self.vae_opt.step()
                self.vae_opt.zero_grad(set_to_none=True)
                self.vae_step += 1
                self._record("autoencoder", self.vae_step, loss, bar)
                session.append(time.monotonic())
                self._plan_phase("autoencoder", self.vae_step, session, until, latest)
                bar.total = self.plan["autoencoder"]
                if self.vae_step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()

    # --- phase 2: denoiser ----------------------------------------------------------------

    @torch.no_grad()
    def encode_latents(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Codes of every tile, once (a KL autoencoder's posterior mean and std): the denoiser
        then trains on latents. The codec's normalisation is fitted to them."""
        self.vae.eval()
        means, stds = [], []
        batch = self.encoding_batch()
        for start in range(0, len(self.data.tiles), batch):
            x = to_unit(self.data.tiles[start : start + batch]).to(self.accelerator.device)
            with self.accelerator.autocast():
                mean, std = self.codec.moments(x)
            means.append(mean.float().cpu())
            if std is not None:
                stds.append(std.float().cpu())
        mean = torch.cat(means)  # (N, C, 24, 24)
        std = torch.cat(stds) if stds else None
        if self.unet_step == 0 or not self.codec.fitted:
            self.codec.fit(mean)
        return mean, std

    def train_denoiser(self, until: float) -> None:
        cfg, device = self.config, self.accelerator.device
        latents = None if self.sd else self.encode_latents()
        self.unet.train()
        session: list[float] = []
        bar = tqdm(
            total=self.plan["denoiser"],
            initial=self.unet_step,
            desc="denoiser",
            disable=not (self.progress and self.accelerator.is_main_process),
        )
        with bar:
            while self.unet_step < self.plan["denoiser"] and not self._out_of_time(until):
                idx = self._indices()
                z = self._latents(idx, latents)  # (B, 8, 24, 24) compact, (B, 4, 64, 64) SD 512
                prompts = [self.data.prompts[i] for i in idx.tolist()]
                drop = torch.rand(len(prompts), generator=self.generator) < cfg.cfg_dropout
                states, mask = self.text.encode(
                    ["" if d else p for d, p in zip(drop, prompts, strict=True)]
                )
                summary = pooled(states, mask).to(device) if cfg.pooled_text else None
                states, mask = trim_padding(states, mask)
                noise = torch.randn(z.shape, generator=self.generator).to(device)
                self._lr(self.unet_opt, cfg.unet_lr, "denoiser", self.unet_step)
                with self.accelerator.autocast():
                    loss = self._denoising_loss(
                        z, noise, states.to(device), None if mask is None else mask.to(device),
                        summary,
                    )  # fmt: skip
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(self.unet.parameters(), 1.0)
                self.unet_opt.step()
                self.unet_opt.zero_grad(set_to_none=True)
                self.ema.step(self.accelerator.unwrap_model(self.unet).parameters())
                self.unet_step += 1
                self._record("denoiser", self.unet_step, loss, bar)
                session.append(time.monotonic())
                self._plan_phase("denoiser", self.unet_step, session, until)
                bar.total = self.plan["denoiser"]
                if self.unet_step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()

    def _denoising_loss(
        self,
        z: torch.Tensor,
        noise: torch.Tensor,
        states: torch.Tensor,
        mask: torch.Tensor | None,
        summary: torch.Tensor | None,
    ) -> torch.Tensor:
        """EDM: D(x) = c_skip x + c_out F(c_in x, ln(sigma) / 4) with log-normal sigmas and the
        loss weight 1 / c_out^2 folded into F's target; DDPM: epsilon or v, optionally weighted
        by min(SNR, gamma) (Hang et al. 2023)."""
        cfg = self.config
        n = len(z)
        if self.edm:
            draw = torch.randn(n, generator=self.generator).to(z.device)
            sigma = (draw * cfg.edm_p_std + cfg.edm_p_mean).exp().view(n, 1, 1, 1)
            noisy = z + sigma * noise
            root = (sigma**2 + EDM_SIGMA_DATA**2).sqrt()
            c_skip = EDM_SIGMA_DATA**2 / root**2
            c_out = sigma * EDM_SIGMA_DATA / root
            pred = self._unet(noisy / root, sigma.flatten().log() / 4, states, mask, summary)
            return F.mse_loss(pred.float(), ((z - c_skip * noisy) / c_out).float())
        t = torch.randint(0, cfg.num_train_timesteps, (n,), generator=self.generator)
        t = t.to(z.device)
        noisy = self.noise.add_noise(z, noise, t)
        velocity = cfg.prediction_type == "v_prediction"
        target = self.noise.get_velocity(z, noise, t) if velocity else noise
        pred = self._unet(noisy, t, states, mask, summary)
        per_tile = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3))
        if cfg.min_snr_gamma:
            alphas = self.noise.alphas_cumprod.to(z.device)[t]
            snr = alphas / (1 - alphas)
            per_tile = per_tile * snr.clamp(max=cfg.min_snr_gamma) / (snr + velocity if velocity
                                                                       else snr)  # fmt: skip
        return per_tile.mean()

    def _unet(self, x, t, states, mask, summary) -> torch.Tensor:
        return self.unet(
            x, t, encoder_hidden_states=states, encoder_attention_mask=mask, class_labels=summary
        ).sample

    def _latents(
        self, idx: torch.Tensor, precomputed: tuple[torch.Tensor, torch.Tensor | None] | None
    ) -> torch.Tensor:
        """Normalised latents of the tiles `idx`, on the device: the precomputed codes (a KL
        autoencoder's drawn from its posterior), or encoded now at the base model's resolution
        by its frozen VAE from tiles randomly rotated or flipped (sd-finetune; too large to keep
        for every tile). Codes are never rotated themselves: no encoder is equivariant, and the
        rotated code of a tile decodes to grain, not to the rotated tile (docs/BENCHMARKS.md)."""
        if precomputed is None:
            x = dihedral(to_unit(self.data.tiles[idx.numpy()]), self.generator)
            x = sd.upsample(x, self.config.sd_resolution).to(self.accelerator.device)
            with torch.no_grad():
                return self.codec.normalise(self.vae.encode(x).latent_dist.sample())
        mean, std = precomputed
        z = mean[idx]
        if std is not None:
            z = z + std[idx] * torch.randn(z.shape, generator=self.generator)
        return self.codec.normalise(z).to(self.accelerator.device)

    def _record(self, phase: str, step: int, loss: torch.Tensor, bar: tqdm) -> None:
        value = float(self.accelerator.gather(loss.detach().reshape(1)).mean())
        if not math.isfinite(value):
            raise FloatingPointError(f"{phase} loss became {value} at step {step}; lower the lr")
        self.losses.append((phase, step, value))
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update()

    # --- the whole run --------------------------------------------------------------------

    def run(
        self,
        max_minutes: float | None = None,
        resume: bool = False,
        after: AfterTraining | None = None,
        within: float | None = None,
    ) -> TrainResult:
        """Both phases within the budget's end (budget_end: `max_minutes`, `within` less the
        work `after` training), the autoencoder's part by autoencoder_share. BudgetError when
        the budget buys fewer steps than the config's minimum."""
        started = time.monotonic()
        until = self.budget_end(started, max_minutes, within, after)
        capped = math.isfinite(until)
        # steps asked for below the minimum fail now, not after training
        self._check_budget("autoencoder", self.config.vae_steps, "is set to", "")
        self._check_budget("denoiser", self.config.unet_steps, "is set to", "")
        if resume and self.load_checkpoint():
            self.log(f"resumed at autoencoder step {self.vae_step}, denoiser step {self.unet_step}")
        if not self.vae_finished:
            vae_until, latest = until, None
            if capped:
                share = self.autoencoder_share()  # probes the speeds and the encoding
                self.check_minimums_fit(until)  # before any step
                # a share of the time the encoding leaves, ending where the denoiser's reserve
                # begins if sooner; short of its minimum, the autoencoder runs on to `latest`
                share_end = started + max(0.0, until - started - self.encoding_seconds) * share
                reserve_start = until - self.denoiser_reserve()
                vae_until, latest = min(share_end, reserve_start), max(share_end, reserve_start)
            self.train_autoencoder(vae_until, latest)
            self._check_budget("autoencoder", self.vae_step, "reached")
            # the denoiser learns this autoencoder's latents, so it is final from here on
            self.vae_finished = self.vae_step >= self.config.vae_steps or capped
            self.save_checkpoint()
        if self.vae_finished:
            self.train_denoiser(until)
            self._check_budget("denoiser", self.unet_step, "reached")
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
            **self.codec.state(),
            "precision": self.precision,
            "vae_steps": self.vae_step,
            "unet_steps": self.unet_step,
            **extra,
        }
        (directory / "histostudy.json").write_text(json.dumps(meta, indent=2))
        with (directory / "loss.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phase", "step", "loss"])
            writer.writerows(self.losses)
