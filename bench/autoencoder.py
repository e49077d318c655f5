"""The autoencoder's ceiling against its objective, variants side by side in one run.

    .venv/bin/python bench/autoencoder.py --steps 600 \
        --variant cpu --variant "no-noise:vae_latent_noise=0;vae_lr=5e-4" [--pcam ../shared/pcam]

Each variant is the cpu preset (or --preset) with the given GeneratorConfig fields changed. All
train the same number of autoencoder steps from the same seed on the same --train PCam train
tiles; then --held held-out valid tiles (half of each label) are split in two halves A and B,
A is encoded and decoded, and the table gives PSNR and SSIM of A's reconstructions and the
reconstruction FID (decoded A against real B) next to the floor (real A against real B, the
same sizes). Steps, not minutes: a loaded machine changes the seconds column, not the rest.

`HF code` is the share of the codes' spectral power (per channel, mean removed) above half
the Nyquist frequency on either axis, beside `HF tile`, the same share for the held-out tiles
averaged down to the codes' side: a code far above its tiles carries detail in its finest
cells, which a denoiser draws last and worst (Skorokhodov et al. 2025; `vae_scale_weight`).
`code std` is the held-out codes' standard deviation, which nothing but the optimiser and
`vae_code_weight` sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def read_tiles(folder: Path, n: int, seed: int) -> np.ndarray:
    """n tiles, half from each label folder (0 and 1), drawn with the seed: (n, 96, 96, 3)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    tiles = []
    for label, count in (("0", n // 2), ("1", n - n // 2)):
        files = sorted((folder / label).glob("*.jpg"))
        if len(files) < count:
            raise SystemExit(f"{folder / label}: {len(files)} tiles, need {count}")
        for index in rng.choice(len(files), count, replace=False):
            with Image.open(files[index]) as image:
                tiles.append(np.asarray(image.convert("RGB")))
    return np.stack(tiles)


def parse_variant(text: str, preset: str):
    """`name:field=value;field=value` (or just `name`) -> (name, GeneratorConfig)."""
    from generation.presets import PRESETS

    name, _, changes = text.partition(":")
    fields = dict(change.partition("=")[::2] for change in filter(None, changes.split(";")))
    try:
        return name, PRESETS[preset].generator.replace(**fields)
    except ValueError as exc:
        raise SystemExit(f"variant {name!r}: {exc}") from exc


def train(config, tiles: np.ndarray, steps: int) -> tuple[object, float, float]:
    """The variant's autoencoder after `steps` steps, its seconds, and its last loss."""
    import torch

    from generation.ldm.data import TrainingData
    from generation.ldm.train import Trainer

    class NoText:  # the autoencoder phase never reads prompts
        def __call__(self, *args, **kwargs):  # pragma: no cover
            raise AssertionError("the autoencoder phase encoded a prompt")

    config = dataclasses.replace(config, vae_steps=steps, checkpoint_every=10**9)
    data = TrainingData(tiles, [""] * len(tiles))
    trainer = Trainer(config, data, Path("/nonexistent"), text_encoder=NoText(), progress=True)
    start = time.perf_counter()
    trainer.train_autoencoder(until=math.inf)
    seconds = time.perf_counter() - start
    last = [loss for phase, _, loss in trainer.losses if phase == "autoencoder"][-20:]
    torch.set_grad_enabled(True)
    return trainer.vae, seconds, float(np.mean(last)) if last else float("nan")


def reconstruct(vae, tiles: np.ndarray):
    """(decoded tiles (N, H, W, 3) uint8, the codes they were decoded from (N, C, h, w))."""
    import torch

    from generation.ldm.codec import to_unit

    vae.eval()
    with torch.no_grad():
        codes = torch.cat(
            [vae.encode(to_unit(tiles[start : start + 128])).float()
             for start in range(0, len(tiles), 128)]
        )  # fmt: skip
    return decode_tiles(vae, codes), codes


def decode_tiles(vae, codes) -> np.ndarray:
    """Codes (N, C, h, w) decoded in batches of 128: (N, H, W, 3) uint8."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(codes), 128):
            y = vae.decode(codes[start : start + 128]).float().clamp(-1, 1)
            out.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def high_frequency_share(x) -> float:
    """Share of the power of (N, C, H, W) maps, per channel with its mean removed, at
    frequencies above half the Nyquist frequency on either axis (over the half spectrum that
    rfft2 returns, each coefficient counted once: white noise gives about 0.71)."""
    import torch

    x = x.double()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    power = torch.fft.rfft2(x, norm="ortho").abs() ** 2
    fy = torch.fft.fftfreq(x.shape[2]).abs().view(-1, 1)
    fx = torch.fft.rfftfreq(x.shape[3]).view(1, -1)
    high = (torch.maximum(fy, fx) > 0.25).expand(power.shape[2:])
    return float(power[..., high].sum() / power.sum())


def code_spectrum(codes, tiles: np.ndarray) -> tuple[float, float]:
    """(HF share of the tiles' codes, HF share of the tiles averaged down to the codes' side)."""
    import torch.nn.functional as F

    from generation.ldm.codec import to_unit

    x = to_unit(tiles)
    factor = x.shape[-1] // codes.shape[-1]
    return high_frequency_share(codes), high_frequency_share(F.avg_pool2d(x, factor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from generation.annotation.embeddings import InceptionEmbedder, inception_weights
    from generation.evaluation.fidelity import reconstruction_quality
    from generation.evaluation.metrics import fid_from_features
    from generation.ldm.precision import flush_denormals

    flush_denormals()  # before torch starts its threads

    variants = [parse_variant(v, args.preset) for v in args.variant]
    tiles = read_tiles(args.pcam / "train", args.train, args.seed)
    held = read_tiles(args.pcam / "valid", args.held, args.seed + 1)
    a, b = held[0::2], held[1::2]  # both halves hold both labels
    embedder = InceptionEmbedder(inception_weights(None), torch.device("cpu"))
    fa, fb = embedder.embed(a).astype(np.float64), embedder.embed(b).astype(np.float64)
    floor = fid_from_features(fa, fb)
    rows = []
    for name, config in variants:
        vae, seconds, loss = train(config, tiles, args.steps)
        decoded, codes = reconstruct(vae, a)
        quality = reconstruction_quality(a, decoded)
        rfid = fid_from_features(embedder.embed(decoded).astype(np.float64), fb)
        hf_code, hf_tile = code_spectrum(codes, a)
        spread = float(codes.std())
        rows.append(
            (name, seconds, loss, quality.psnr, quality.ssim, rfid, hf_code, hf_tile, spread)
        )
    amx = "amx" if "amx" in Path("/proc/cpuinfo").read_text() else "no amx"
    print(f"\n{args.steps} autoencoder steps, {args.train} train tiles, {len(a)} v {len(b)} "
          f"held-out; {platform.node()}, {torch.get_num_threads()} threads, {amx}, "
          f"{datetime.now(UTC):%Y-%m-%d}")  # fmt: skip
    print(f"{'variant':<24} {'s/step':>7} {'loss':>7} {'PSNR':>6} {'SSIM':>6} {'rFID':>7} "
          f"{'floor':>6} {'x floor':>7} {'HF code':>7} {'HF tile':>7} {'code std':>8}")  # fmt: skip
    for name, seconds, loss, psnr, ssim, rfid, hf_code, hf_tile, spread in rows:
        print(f"{name:<24} {seconds / args.steps:7.3f} {loss:7.4f} {psnr:6.2f} {ssim:6.3f} "
              f"{rfid:7.1f} {floor:6.1f} {rfid / floor:7.2f} {hf_code:7.3f} "
              f"{hf_tile:7.3f} {spread:8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
