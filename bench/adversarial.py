"""The autoencoder with and without a patch-discriminator loss, at equal steps.

    .venv/bin/python bench/adversarial.py --steps 1500 --gan-weight 0 --name base
    .venv/bin/python bench/adversarial.py --steps 1500 --gan-weight 0.5 --gan-start 0.33 \
        --name gan [--pcam ../shared/pcam]

The question the fidelity issue names as a lever: does the adversarial loss that latent
diffusion autoencoders train with (Esser et al. 2021, "Taming Transformers"; Rombach et al.
2022) lower the reconstruction FID of the cpu preset's autoencoder within a CPU budget? The
loop is the Trainer's autoencoder phase (its batches, crops, latent noise, bf16 where
`ldm.precision` picks it, AdamW and learning-rate schedule), with, from --gan-start of the
steps on, a PatchGAN discriminator (Isola et al. 2017) trained with the hinge loss and the
decoder's adversarial term weighted adaptively against L1 at the decoder's last layer, as
taming does. Run it once per arm (one process each, side by side if the cores allow); the
scoring is bench/autoencoder.py's: 1,000 held-out valid tiles split in halves A and B,
rFID of decoded A against real B beside the floor, and `noisy rFID`, A's codes decoded
with Gaussian noise of 0.25 of their std, as a sampler's near-miss codes are.

CPU only. The autoencoder's own loss is the Trainer's (`AutoencoderLoss`), so a rerun trains
the preset as it is now: since the figures in docs/BENCHMARKS.md were measured the cpu preset
added the code penalty (`vae_code_weight`), and taming's adaptive weight balances the
adversarial term against that whole loss, as taming does against its reconstruction and
perceptual losses. Not part of the product: it measured no gain (docs/BENCHMARKS.md), so the
Trainer carries no discriminator.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def patch_discriminator(width: int = 64):
    """PatchGAN with two strided layers: (B, 3, 48, 48) -> (B, 1, 10, 10) logits, each
    seeing about 34 px (a few nuclei). Initialised as taming's NLayerDiscriminator."""
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 1, 1, bias=False),
        nn.BatchNorm2d(4 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 4, 1, 1),
    )
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
    return net


def train(args: argparse.Namespace, tiles: np.ndarray):
    """The cpu preset's autoencoder after --steps steps, and seconds a step."""
    import torch
    import torch.nn.functional as F

    from generation.ldm.codec import to_unit
    from generation.ldm.data import dihedral
    from generation.ldm.models import build_autoencoder
    from generation.ldm.objectives import AutoencoderLoss, learning_rate
    from generation.ldm.precision import resolve_precision
    from generation.presets import PRESETS

    cfg = PRESETS[args.preset].generator
    if cfg.autoencoder != "residual" or not (cfg.vae_crop and cfg.vae_batch_size):
        raise SystemExit(
            f"preset {args.preset!r}: this bench needs the residual autoencoder trained on "
            "crops (vae_crop and vae_batch_size set), as the cpu and gpu presets have"
        )
    bf16 = resolve_precision(cfg.mixed_precision, cuda=False) == "bf16"
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    vae = build_autoencoder(cfg)
    objective = AutoencoderLoss.of(vae, cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, betas=(0.9, 0.99), weight_decay=0)
    disc = patch_discriminator()
    disc_opt = torch.optim.Adam(disc.parameters(), lr=args.disc_lr, betas=(0.5, 0.9))
    last = vae.decoder[-1].conv.weight  # where taming balances the two gradients
    crop, grid = cfg.vae_crop, (cfg.image_size - cfg.vae_crop) // cfg.downsampling + 1
    start = time.perf_counter()
    for step in range(args.steps):
        picks = torch.multinomial(torch.ones(len(tiles)), cfg.vae_batch_size, True,
                                  generator=generator)  # fmt: skip
        x = to_unit(tiles[picks.numpy()])
        offsets = torch.randint(0, grid, (len(x), 2), generator=generator) * cfg.downsampling
        x = torch.stack([t[:, i : i + crop, j : j + crop]
                         for t, (i, j) in zip(x, offsets.tolist(), strict=True)])  # fmt: skip
        x = dihedral(x, generator)  # (B, 3, 48, 48)
        for group in opt.param_groups:
            group["lr"] = learning_rate(
                cfg.vae_lr, step, args.steps, cfg.lr_warmup_steps, cfg.lr_schedule
            )
        adversarial = args.gan_weight > 0 and step >= int(args.gan_start * args.steps)
        disc.requires_grad_(False)
        with autocast():
            own, recon = objective.with_reconstruction(x)
            loss = own
            if adversarial:
                fool = -disc(recon).float().mean()
                g_own = torch.autograd.grad(own, last, retain_graph=True)[0]
                g_fool = torch.autograd.grad(fool, last, retain_graph=True)[0]
                weight = (g_own.norm() / (g_fool.norm() + 1e-4)).clamp(0, 1e4).detach()
                loss = own + args.gan_weight * weight * fool
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if adversarial:
            disc.requires_grad_(True)
            with autocast():
                real, fake = disc(x).float(), disc(recon.detach()).float()
                hinge = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
            (0.5 * hinge).backward()
            disc_opt.step()
            disc_opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == args.steps - 1:
            state = ""
            if adversarial:
                state = f" disc {0.5 * float(hinge):.3f} weight {float(weight):.3f}"
            print(f"{args.name} step {step} loss {float(own):.4f}{state} "
                  f"{time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
    return vae, (time.perf_counter() - start) / args.steps


def near_miss(vae, codes, seed: int) -> np.ndarray:
    """Codes plus Gaussian noise of 0.25 of their std, decoded: (N, H, W, 3) uint8."""
    import torch
    from autoencoder import decode_tiles

    generator = torch.Generator().manual_seed(seed)
    noisy = [
        c + 0.25 * codes.std() * torch.randn(c.shape, generator=generator) for c in codes.split(128)
    ]
    return decode_tiles(vae, torch.cat(noisy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--gan-weight", type=float, default=0.0)
    parser.add_argument("--gan-start", type=float, default=0.33, help="share of the steps")
    parser.add_argument("--disc-lr", type=float, default=2e-4)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from autoencoder import read_tiles, reconstruct

    from generation.annotation.embeddings import InceptionEmbedder, inception_weights
    from generation.evaluation.fidelity import reconstruction_quality
    from generation.evaluation.metrics import fid_from_features
    from generation.ldm.precision import flush_denormals

    flush_denormals()  # before torch starts its threads
    tiles = read_tiles(args.pcam / "train", args.train, args.seed)
    held = read_tiles(args.pcam / "valid", args.held, args.seed + 1)
    a, b = held[0::2], held[1::2]
    vae, seconds = train(args, tiles)
    embedder = InceptionEmbedder(inception_weights(None), torch.device("cpu"))

    def features(x: np.ndarray) -> np.ndarray:
        return embedder.embed(x).astype(np.float64)

    fb = features(b)
    floor = fid_from_features(features(a), fb)
    decoded, codes = reconstruct(vae, a)
    quality = reconstruction_quality(a, decoded)
    rfid = fid_from_features(features(decoded), fb)
    noisy = fid_from_features(features(near_miss(vae, codes, args.seed + 5)), fb)
    amx = "amx" if "amx" in Path("/proc/cpuinfo").read_text() else "no amx"
    print(f"\n{args.steps} steps, {args.train} train tiles, {len(a)} v {len(b)} held-out; "
          f"{platform.node()}, {torch.get_num_threads()} threads, {amx}, "
          f"{datetime.now(UTC):%Y-%m-%d}")  # fmt: skip
    print(f"{'arm':<10} {'gan':>5} {'from':>5} {'s/step':>7} {'PSNR':>6} {'SSIM':>6} {'rFID':>7} "
          f"{'floor':>6} {'x floor':>7} {'noisy rFID':>10}")  # fmt: skip
    gan = f"{args.gan_weight:5.2f} {args.gan_start:5.2f}" if args.gan_weight else "    -     -"
    print(f"{args.name:<10} {gan} {seconds:7.3f} {quality.psnr:6.2f} {quality.ssim:6.3f} "
          f"{rfid:7.1f} {floor:6.1f} {rfid / floor:7.2f} {noisy:10.1f}")  # fmt: skip
    if not math.isfinite(rfid):
        raise SystemExit("rFID is not finite: the autoencoder diverged")


if __name__ == "__main__":
    main()
