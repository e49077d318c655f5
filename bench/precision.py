"""fp32 against bf16 autocast on this CPU, for the cpu preset's training steps.

    .venv/bin/python bench/precision.py [--steps 12] [--preset cpu]

Times training steps (forward, backward, AdamW) of the preset's autoencoder (its crop and
batch) and denoiser (its batch, prompts of 16 tokens) in fp32 and under bf16 autocast, after
two warm-up steps each, and prints seconds per step and the ratio, with the CPU's matrix
extensions. `mixed_precision=auto` (generation/ldm/precision.py) picks bf16 on a CPU only
where this shows it faster: AMX tiles.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(f for f in wanted if f in flags) or "none of avx512f, avx512_bf16, amx"


def seconds_per_step(step, n: int, bf16: bool) -> float:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):
            step()
        started = time.perf_counter()
        for _ in range(n):
            step()
    return (time.perf_counter() - started) / n


def main() -> None:
    import torch
    import torch.nn.functional as F

    from generation.ldm.models import build_autoencoder, build_unet
    from generation.presets import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--preset", default="cpu")
    args = parser.parse_args()
    config = PRESETS[args.preset].generator
    torch.manual_seed(0)
    vae, unet = build_autoencoder(config), build_unet(config)
    vae_opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    unet_opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    crop = config.vae_crop or config.image_size
    tiles = torch.rand(config.vae_batch_size or config.batch_size, 3, crop, crop) * 2 - 1
    side = config.latent_size
    z = torch.randn(config.batch_size, config.latent_channels, side, side)
    states = torch.randn(config.batch_size, 16, config.text_dim)
    pooled = torch.randn(config.batch_size, config.text_dim) if config.pooled_text else None

    def vae_step() -> None:
        loss = F.l1_loss(vae.decode(vae.encode(tiles)).float(), tiles)
        loss.backward()
        vae_opt.step()
        vae_opt.zero_grad(set_to_none=True)

    def unet_step() -> None:
        t = torch.rand(len(z))
        out = unet(z, t, encoder_hidden_states=states, class_labels=pooled).sample
        F.mse_loss(out.float(), z).backward()
        unet_opt.step()
        unet_opt.zero_grad(set_to_none=True)

    print(f"CPU: {cpu_flags()}; {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| part | fp32 s/step | bf16 s/step | fp32 / bf16 |")
    print("|---|---|---|---|")
    for name, step in (("autoencoder", vae_step), ("denoiser", unet_step)):
        fp32 = seconds_per_step(step, args.steps, False)
        bf16 = seconds_per_step(step, args.steps, True)
        print(f"| {name} | {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f} |")


if __name__ == "__main__":
    main()
