"""Which precision is fast here: one rule for the generator, the classifiers and sampling."""

from __future__ import annotations

import torch


def resolve_precision(setting: str, cuda: bool) -> str:
    """`auto` -> bf16 where it is fast (a GPU that has it, a CPU with AMX matrix units, where
    bf16 convolutions run several times faster than fp32), else "no" (fp32)."""
    if setting != "auto":
        return setting
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return "bf16" if amx() else "no"
