"""Sample grid of a registered generator, for people to look at.

    .venv/bin/python bench/samples.py --generator G [--n 64] [--steps 25] [--out docs/samples.png]

Draws n tiles for the generator's most common training prompts (seeds 0..n-1), captions
each with its prompt's distinctive part, and puts real tiles with the same prompts beside
them in a second grid (`*-real.png`) for comparison. Also refreshes the generator's
samples.png and loss.png.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from generation.ldm.config import GUIDANCE, SAMPLING_STEPS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generator", required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=SAMPLING_STEPS)
    parser.add_argument("--guidance", type=float, default=GUIDANCE)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "samples.png")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "histostudy.settings")
    import django

    django.setup()
    import numpy as np

    from generation.generators import load_pipeline, training_set, write_previews
    from generation.models import Generator
    from generation.plots import sample_grid, short_caption

    generator = Generator.objects.get(name=args.generator)
    tiles, prompts, _ = training_set(generator.dataset.name, generator.split, generator.scheme)
    common = [p for p, _ in Counter(prompts).most_common(args.n // 2)]
    chosen = [common[i % len(common)] for i in range(args.n)]
    pipeline = load_pipeline(generator, "cpu")
    synthetic = pipeline.generate(
        chosen, list(range(args.n)), steps=args.steps, guidance=args.guidance
    )
    captions = [short_caption(p) for p in chosen]
    sample_grid(synthetic, captions, args.out)
    rng = np.random.default_rng(0)
    real = [tiles[rng.choice([i for i, q in enumerate(prompts) if q == p])] for p in chosen]
    sample_grid(np.stack(real), captions, args.out.with_name(args.out.stem + "-real.png"))
    write_previews(Path(generator.path), prompts)
    print(f"wrote {args.out} and {args.out.with_name(args.out.stem + '-real.png')}")


if __name__ == "__main__":
    main()
