"""A trainer's time budget: steps planned from the measured speed of each phase, the
autoencoder's share of a capped run, and the refusal of a budget too short to train."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from generation.ldm.autoencoder import TileAutoencoder
from generation.ldm.config import AfterTraining

# a forecast below this share of a phase's minimum steps refuses the budget at once; above it,
# the phase trains towards its minimum and the steps it reached decide
PROJECTION_SLACK = 0.9
# the denoiser's minimum steps, timed by the probe, times this: what an autoencoder short of its
# own minimum leaves the denoiser when it trains past its share of the time
DENOISER_RESERVE_MARGIN = 1.3
# the work after a deadline-capped training (AfterTraining), as probed, times this: two
# fresh-clone demos on 2-core AMD EPYC VMs took 3.4 and 3.9 minutes after training where
# the probes, one of them since fixed, kept 2.8 and 3.6
AFTER_TRAINING_MARGIN = 1.2
# the plan is fixed again at the end of the warm-up only from at least this many timed steps
REPLAN_MIN_STEPS = 23


class BudgetError(ValueError):
    """Fewer steps than the config's minimum, as set or as a time budget buys: no generator is
    made."""


class TimeBudgetError(BudgetError):
    """The time budget, not the steps asked for, is what falls short: more minutes would do."""


class TimeBudget:
    """Budget methods of Trainer (generation.ldm.train), which owns the state they use."""

    kept_seconds = 0.0  # what budget_end keeps for the work after training

    def _plan_phase(
        self, phase: str, step: int, session: list[float], until: float, latest: float | None = None
    ) -> None:
        """With a deadline, fix the phase's step count from the speed of this session's steps
        3 to 13 (the first steps warm caches up) and refuse a budget clearly below the minimum.
        `latest`: how long the phase may run on past `until` to reach its minimum (the
        autoencoder's, see autoencoder_out_of_time); the refusal looks that far ahead.

        At the end of the learning-rate warm-up the plan is fixed once more, from the speed of
        every step since the third: ten steps are a short sample (kernels for prompt lengths not
        seen yet are still being made), and the 60-minute run of 2026-12-07 left 6 minutes of
        its budget unused on that first forecast. No step before then had a learning rate that
        depended on the plan (the cosine decay starts after the warm-up), so the schedule the
        run follows is the one it would have had with the second forecast from the start."""
        if not math.isfinite(until):
            return
        if self.planned[phase]:
            if step == self.config.lr_warmup_steps and len(session) >= REPLAN_MIN_STEPS:
                self.plan[phase] = self._forecast(phase, step, session, until)[0]
            return
        if len(session) < 13:
            return
        plan, stretched = self._forecast(phase, step, session[:13], until, latest)
        self.planned[phase] = True
        needed = self._steps(phase)[1]
        if stretched < PROJECTION_SLACK * needed:
            self.plan[phase] = stretched
            self._check_budget(phase, stretched, "would reach")
        self.plan[phase] = plan

    def _forecast(
        self, phase: str, step: int, timed: list[float], until: float, latest: float | None = None
    ) -> tuple[int, int]:
        """The steps the phase will have made by `until` (and by `latest`) at the speed of the
        `timed` steps from the third on, at most the config's steps; a forecast short of the
        minimum steps is raised to them, as far as the config's steps allow (ten steps are a
        noisy forecast: a near miss trains on towards the minimum, and the end of training
        checks the steps reached). Every process gets the lowest forecast of them all, or some
        would wait for ever."""
        ceiling, needed = self._steps(phase)
        rate = (len(timed) - 3) / max(timed[-1] - timed[2], 1e-9)  # steps per second

        def reach(deadline: float) -> int:
            return min(ceiling, step + int(rate * max(0.0, deadline - time.monotonic())))

        plan = reach(until)
        stretched = plan if latest is None else max(plan, reach(latest))
        if self.accelerator.num_processes > 1:
            both = torch.tensor([plan, stretched], device=self.accelerator.device)
            lowest = self.accelerator.gather(both).reshape(-1, 2).min(dim=0).values
            plan, stretched = int(lowest[0]), int(lowest[1])
        return max(plan, min(needed, ceiling)), stretched

    def _steps(self, phase: str) -> tuple[int, int]:
        """The phase's steps as the config sets them, and its minimum."""
        cfg = self.config
        if phase == "autoencoder":
            return cfg.vae_steps, cfg.min_vae_steps
        return cfg.unet_steps, cfg.min_unet_steps

    def _check_budget(
        self, phase: str, steps: int, verb: str, where: str = " in this time budget"
    ) -> None:
        needed = self._steps(phase)[1]
        field = "min_vae_steps" if phase == "autoencoder" else "min_unet_steps"
        if steps >= needed:
            return
        advice = (
            f"give it about {needed / max(steps, 1):.1f} times the time, or more"
            if where
            else f"ask for at least {needed}"
        )
        raise (TimeBudgetError if where else BudgetError)(
            f"the {phase} {verb} {steps} steps{where}, fewer than the {needed} it needs "
            f"(the preset's {field}); {advice}"
        )

    def _out_of_time(self, until: float) -> bool:
        """Whether the time is up, agreed by every process: one that stopped alone would leave
        the others waiting in their next gradient all-reduce for ever."""
        late = time.monotonic() >= until
        if self.accelerator.num_processes == 1:
            return late
        flag = torch.tensor([float(late)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def autoencoder_out_of_time(self, until: float, latest: float | None) -> bool:
        """Whether the autoencoder's time is up: at its share of the budget (`until`) once it
        has its minimum steps; short of them, it runs on until `latest`, the last moment that
        leaves the denoiser the time its own minimum takes at the probed speed. A share is a
        forecast from four probe steps; the minimums and the whole budget are what bind."""
        if not self._out_of_time(until):
            return False
        if latest is None or self.vae_step >= self.config.min_vae_steps:
            return True
        if not self.stretched and latest > until:  # the same collective calls either way
            self.stretched = True
            self.log(
                f"the autoencoder has {self.vae_step} of its {self.config.min_vae_steps} "
                "minimum steps at the end of its share of the time: it trains on into the "
                "denoiser's spare time"
            )
        return self._out_of_time(latest)

    def check_minimums_fit(self, until: float) -> None:
        """Refuse at once a time budget too short for both phases' minimum steps and the
        encoding between them at the speeds autoencoder_share probed. Without it a capped run
        learns so only when the denoiser's forecast fails, after the autoencoder has spent its
        share: on a 2-core AMD EPYC without AVX-512 (2026-12-07) `make demo` refused after 13
        of its 20 minutes. A probe is a few steps, so a budget found short is probed once more
        and judged on the faster of the two, not on a moment of load."""
        cfg = self.config
        vae_left = max(0, cfg.min_vae_steps - self.vae_step)
        unet_left = max(0, cfg.min_unet_steps - self.unet_step)
        if not vae_left + unet_left:  # no minimum to reach: whatever the time buys will do
            return
        for attempt in range(2):
            vae_seconds, unet_seconds = self.probed
            needed = vae_left * vae_seconds + self.encoding_seconds + unet_left * unet_seconds
            left = until - time.monotonic()
            short = left < PROJECTION_SLACK * needed
            if self.accelerator.num_processes > 1:  # all agree, or some would wait for ever
                flag = torch.tensor([float(short)], device=self.accelerator.device)
                short = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
            if not short:
                return
            if attempt == 0:
                again = self._probe_speeds()
                self.probed = (min(vae_seconds, again[0]), min(unet_seconds, again[1]))
                self.encoding_seconds = min(self.encoding_seconds, self._probe_encoding())
        # the minutes to ask for include the work kept for after training (budget_end)
        advice = math.ceil((DENOISER_RESERVE_MARGIN * needed + self.kept_seconds) / 60)
        raise TimeBudgetError(
            f"the minimum steps ({vae_left} autoencoder + {unet_left} denoiser to go, of the "
            "preset's min_vae_steps and min_unet_steps) and the encoding of the training "
            f"tiles between them take about {needed / 60:.1f} minutes at the speed measured "
            f"here ({vae_seconds:.2f} s an autoencoder step, {self.encoding_seconds / 60:.1f} "
            f"min encoding, {unet_seconds:.2f} s a denoiser step), more than the "
            f"{max(left, 0) / 60:.1f} this time budget leaves; give it about {advice} minutes, "
            "or more"
        )

    def denoiser_reserve(self) -> float:
        """Seconds the denoiser's minimum steps take at the probed speed (autoencoder_share
        probes it), with DENOISER_RESERVE_MARGIN for a speed that varies, and the encoding of
        the tiles before it starts."""
        steps = DENOISER_RESERVE_MARGIN * self.config.min_unet_steps * self.probed[1]
        return steps + self.encoding_seconds

    def autoencoder_share(self) -> float:
        """The autoencoder's share of a time budget: `vae_time_share`, or more where its
        remaining steps take a larger share of the time both phases' remaining steps take at
        the speeds probed here. A budget in minutes (the preset's steps far beyond reach) keeps
        vae_time_share; a budget in steps with a time cap (the demo's) that the cap cuts short
        cuts both phases alike, instead of starving the autoencoder on a slow machine."""
        vae_seconds, unet_seconds = self.probed = self._probe_speeds()
        self.encoding_seconds = self._probe_encoding()
        vae_left = max(0, self.config.vae_steps - self.vae_step) * vae_seconds
        unet_left = max(0, self.config.unet_steps - self.unet_step) * unet_seconds
        share = max(self.config.vae_time_share, vae_left / max(vae_left + unet_left, 1e-9))
        self.log(
            f"speed here: {vae_seconds:.2f} s an autoencoder step, {unet_seconds:.2f} s a "
            f"denoiser step, {self.encoding_seconds / 60:.1f} min to encode the tiles between "
            f"them; the autoencoder gets at most {share:.0%} of the time they leave"
        )
        return share

    def budget_end(
        self,
        started: float,
        max_minutes: float | None,
        within: float | None,
        after: AfterTraining | None,
    ) -> float:
        """When training must end: `max_minutes` after `started`, or, if sooner, `within`
        minutes after it less the time `after` takes here (after_training_seconds)."""
        until = started + 60 * max_minutes if max_minutes else math.inf
        if within is None:
            return until
        self.kept_seconds = self.after_training_seconds(after) if after else 0.0
        if after is not None:
            self.log(
                f"{self.kept_seconds / 60:.1f} of the {within:.1f} minutes kept for the work "
                f"after training ({after.tiles} tiles to sample in {after.steps} steps, and "
                f"{after.seconds / 60:.1f} min of other work)"
            )
        return min(until, started + 60 * within - self.kept_seconds)

    def after_training_seconds(self, after: AfterTraining) -> float:
        """Seconds `after` takes here: one timed sampling batch (a denoiser pass over two rows
        a tile, 64 tiles as the pipeline batches them, prompts of 16 tokens, in fp32 as the
        pipeline samples by default, and the decoding of the batch) after a warm-up one, scaled
        to its tiles and steps, plus its measured seconds, with AFTER_TRAINING_MARGIN for what
        varies. The weights are untrained, which costs the same; nothing is kept. The
        denoiser's class forward is called: the one
        Accelerate wraps runs under bf16 autocast where training does, which on a 2-core AMD
        EPYC timed sampling at half its fp32 cost (the demo of 2026-12-08 kept 2.8 minutes
        for work that took 3.4)."""
        if after.tiles <= 0:
            return AFTER_TRAINING_MARGIN * after.seconds
        cfg, device = self.config, self.accelerator.device
        rng = torch.Generator().manual_seed(cfg.seed + 3)
        n = min(64, after.tiles)
        z, states, summary = (x.to(device) for x in self._denoiser_inputs(2 * n, rng))
        unet = self.accelerator.unwrap_model(self.unet)
        forward = type(unet).forward  # not Accelerate's autocast wrapper of the instance's
        t = torch.ones(2 * n, device=device)

        def one_batch() -> float:
            _synchronize(device)
            began = time.monotonic()
            for _ in range(2):  # two denoiser passes, averaged
                forward(unet, z, t, encoder_hidden_states=states,
                        class_labels=summary if cfg.pooled_text else None)  # fmt: skip
            _synchronize(device)
            denoised = time.monotonic()
            self.vae.decode(z[:n])
            _synchronize(device)
            return (denoised - began) / 2 * after.steps + time.monotonic() - denoised

        with torch.no_grad():
            one_batch()
            seconds = one_batch()
        return AFTER_TRAINING_MARGIN * (seconds / n * after.tiles + after.seconds)

    def encoding_batch(self) -> int:
        """Tiles a batch of the encoding pass: 32 on a CPU, where a tile costs less in small
        batches that stay in cache (2-core AMD EPYC, cpu preset: 12 ms a tile at 32, 19 ms at
        256), 256 on an accelerator."""
        return 32 if self.accelerator.device.type == "cpu" else 256

    def _probe_encoding(self) -> float:
        """Seconds the encoding of every training tile between the phases takes
        (encode_latents), from one timed batch of random tiles after a warm-up one: minutes of
        a capped run on a slow CPU (4 of them for 19,171 tiles on a 2-core AMD EPYC without
        AVX-512), which the denoiser's share would otherwise pay. Nothing is kept."""
        if self.sd:  # no encoding pass: the frozen VAE encodes each batch inside a step
            return 0.0
        cfg, device = self.config, self.accelerator.device
        rng = torch.Generator().manual_seed(cfg.seed + 2)
        n = max(1, min(self.encoding_batch(), len(self.data.tiles)))
        x = (torch.rand(n, 3, cfg.image_size, cfg.image_size, generator=rng) * 2 - 1).to(device)
        with torch.no_grad(), self.accelerator.autocast():
            self.codec.moments(x)
            _synchronize(device)
            began = time.monotonic()
            self.codec.moments(x)
            _synchronize(device)
        return (time.monotonic() - began) / n * len(self.data.tiles)

    def _denoiser_inputs(
        self, rows: int, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random latents, prompt states of 16 tokens and pooled prompts of the real shapes,
        `rows` of each, for the probes."""
        cfg, side = self.config, self.config.latent_size
        z = torch.randn(rows, cfg.latent_channels, side, side, generator=rng)
        states = torch.randn(rows, 16, cfg.text_dim, generator=rng)
        return z, states, torch.randn(rows, cfg.text_dim, generator=rng)

    def _probe_speeds(self, steps: int = 4) -> tuple[float, float]:
        """Seconds of one training step of each phase (forward and backward on random inputs
        of the real shapes, the last half of `steps` timed), changing no weight, optimiser
        state or random stream that training uses, so a resumed run stays exact."""
        cfg, device = self.config, self.accelerator.device
        rng = torch.Generator().manual_seed(cfg.seed + 1)
        crop = cfg.vae_crop or cfg.image_size
        tiles = torch.rand(cfg.vae_batch_size or cfg.batch_size, 3, crop, crop, generator=rng)
        z, states, summary = self._denoiser_inputs(cfg.batch_size, rng)
        unet = self.accelerator.unwrap_model(self.unet)  # no gradient all-reduce

        pooled_text = summary.to(device) if cfg.pooled_text else None

        def vae_step() -> None:
            x = (tiles * 2 - 1).to(device)
            if isinstance(self.vae, TileAutoencoder):
                recon = self.vae.decode(self.vae.encode(x))
            else:  # the KL autoencoder of earlier generators
                recon = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
            F.l1_loss(recon.float(), x).backward()

        def unet_step() -> None:
            t = torch.ones(len(z), device=device)
            out = unet(z.to(device), t, encoder_hidden_states=states.to(device),
                       class_labels=pooled_text).sample  # fmt: skip
            F.mse_loss(out.float(), z.to(device)).backward()

        timings = []
        for module, step in ((self.vae, vae_step), (unet, unet_step)):
            times = []
            for _ in range(steps):
                _synchronize(device)
                began = time.monotonic()
                with self.accelerator.autocast():
                    step()
                _synchronize(device)
                times.append(time.monotonic() - began)
            module.zero_grad(set_to_none=True)
            timings.append(sum(times[steps // 2 :]) / len(times[steps // 2 :]))
        return timings[0], timings[1]


def _synchronize(device: torch.device) -> None:
    """Wait for a GPU's queued work, so a probe times it done, not queued; a no-op on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
