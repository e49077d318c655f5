"""The `sd-finetune` backbone: a local diffusers Stable Diffusion folder, as in the paper.

The paper fine-tunes the UNet of Stable Diffusion 1.5 at 512 px with its VAE and CLIP text
encoder frozen. Here the folder is read offline (`--base-model DIR`, the layout that
`StableDiffusionPipeline.save_pretrained` writes: unet/, vae/, text_encoder/, tokenizer/,
scheduler/). Tiles are upsampled from 96 px to the model's resolution for training, and
generated images are downsampled back to 96 px. Only the fine-tuned UNet is saved with a
generator; its VAE, text encoder and noise schedule come from the base folder, whose
checksum is recorded so that a changed base folder is refused instead of silently used.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from generation.ldm.digest import files_sha256
from generation.ldm.text import FrozenTextEncoder

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
FROZEN = ("vae", "text_encoder", "tokenizer", "scheduler")  # what a generator reuses


class BaseModelError(ValueError):
    """The base folder is not a usable Stable Diffusion folder; the message names the part."""


def check_base(folder: Path) -> None:
    if not folder.is_dir():
        raise BaseModelError(f"--base-model {folder}: no such folder")
    missing = [p for p in PARTS if not (folder / p).is_dir()]
    if missing:
        raise BaseModelError(
            f"--base-model {folder}: not a diffusers Stable Diffusion folder "
            f"({', '.join(missing)}/ missing; expected {', '.join(PARTS)})"
        )


def base_checksum(folder: Path) -> str:
    """SHA-256 over the files of the parts a generator reuses (names and bytes, sorted)."""
    return files_sha256(
        folder, [p for part in FROZEN for p in (folder / part).rglob("*") if p.is_file()]
    )


def load_unet(folder: Path):
    from diffusers import UNet2DConditionModel

    return _load(folder, "unet", lambda p: UNet2DConditionModel.from_pretrained(p))


def load_vae(folder: Path):
    from diffusers import AutoencoderKL

    vae = _load(folder, "vae", lambda p: AutoencoderKL.from_pretrained(p))
    vae.requires_grad_(False)
    return vae.eval()


def load_scheduler_config(folder: Path) -> dict:
    """The base model's noise schedule (SD 1.5: scaled-linear betas 0.00085-0.012, epsilon)."""
    path = folder / "scheduler" / "scheduler_config.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"{path}: unreadable scheduler config ({exc})") from exc


def _load(folder: Path, part: str, loader):
    check_base(folder)
    try:
        return loader(folder / part)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BaseModelError(f"{folder / part}: cannot load ({exc})") from exc


def vae_factor(vae) -> int:
    """How much the VAE downsamples: 8 for Stable Diffusion."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


class ClipPromptEncoder(FrozenTextEncoder):
    """Prompt -> the frozen CLIP text encoder's (77, D) hidden states, as Stable Diffusion
    conditions on them: every position attended, padding included. Prompts are cached."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        # not super().__init__(): that loads MiniLM; this sets the same attributes from CLIP
        from transformers import AutoTokenizer, CLIPTextModel

        check_base(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
            self.model = CLIPTextModel.from_pretrained(folder / "text_encoder").to(device).eval()
        except (OSError, ValueError) as exc:
            raise BaseModelError(f"{folder}: cannot load the text encoder ({exc})") from exc
        self.model.requires_grad_(False)
        self.max_tokens = self.tokenizer.model_max_length  # 77 for Stable Diffusion
        self.device = device
        self._cache = {}

    def _run(self, tokens) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model(tokens["input_ids"]).last_hidden_state
        return hidden, torch.ones(hidden.shape[:2], dtype=torch.long)


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, 96, 96) in [-1, 1] -> (B, 3, size, size), bicubic, as the paper upsampled tiles."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 3, size, size), area-averaged (antialiased) back to tile size."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")
