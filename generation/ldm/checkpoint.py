"""Checkpoints of a training run: everything needed to resume (weights, optimisers, EMA,
random state, step plan), written to a temporary file and renamed over the last one."""

from __future__ import annotations

import torch

from generation.ldm.codec import LatentCodec
from generation.ldm.config import GeneratorConfig

CHECKPOINT = "checkpoint"
STATE = "state.pt"


class Checkpoints:
    """Checkpoint methods of Trainer (generation.ldm.train), which owns the state they save."""

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
                "codec": self.codec.state(),
                "plan": self.plan,
                "planned": self.planned,
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
        # compared as configs, so a checkpoint written before a field existed matches its
        # LEGACY meaning
        if GeneratorConfig.from_json(state["config"]) != self.config:
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
        if "codec" in state:
            self.codec = LatentCodec.from_meta(self.vae, state["codec"])
        else:  # written before the codec: one scaling factor
            self.codec = LatentCodec(self.vae, state["scaling_factor"])
        self.plan = state.get("plan", self.plan)
        self.planned = state.get("planned", self.planned)
        self.generator.set_state(state["generator"])
        if "torch_rng" in state:  # absent from checkpoints written before it was saved
            torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.losses = [tuple(x) for x in state["losses"]]
        return True
