"""Tile fixtures: small H&E-like images written in the layouts import_tiles reads."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.forms.models import model_to_dict
from PIL import Image

from generation.annotation.annotate import annotate_dataset
from generation.cohorts import CohortRequest, CohortSummary, Runtime, generate_cohort
from generation.generators import generators_root, link_training_tiles, train_generator
from generation.ldm.config import SamplingConfig
from generation.models import Dataset, Generator
from generation.tiles.importer import import_tiles
from generation.tiles.store import pixel_sha256
from tests.generation.test_features import draw_discs, scattered


def he_like_tile(seed: int, size: int = 96) -> np.ndarray:
    """A pink background with purple blobs: enough structure to survive JPEG distinctly."""
    rng = np.random.default_rng(seed)
    tile = np.empty((size, size, 3), np.float64)
    tile[:] = (230, 180, 210)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(rng.integers(5, 15)):
        cy, cx, r = rng.integers(0, size), rng.integers(0, size), rng.integers(3, 9)
        tile[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (110, 60, 150)
    tile += rng.normal(0, 6, tile.shape)
    return np.clip(tile, 0, 255).astype(np.uint8)


@dataclass
class TileFolder:
    """An image-folder tree <split>/<label>/*.jpg and what an import of it must find."""

    root: Path
    unique: dict[str, tuple[int, str]] = field(default_factory=dict)  # sha -> (label, split)
    files: int = 0
    duplicates: int = 0

    def decoded(self, path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image)


@pytest.fixture
def tile_folder(tmp_path: Path) -> TileFolder:
    """12 train + 4 valid tiles as JPEG, half tumour, plus 2 byte-identical duplicates."""
    folder = TileFolder(tmp_path / "pcam")
    seed = 0
    for split, per_label in (("train", 6), ("valid", 2)):
        for label in (0, 1):
            directory = folder.root / split / str(label)
            directory.mkdir(parents=True)
            for _ in range(per_label):
                path = directory / f"patch{seed:07d}.jpg"
                Image.fromarray(he_like_tile(seed)).save(path, quality=75)
                folder.unique[pixel_sha256(folder.decoded(path))] = (label, split)
                folder.files += 1
                seed += 1
    for original in ("train/1/patch0000006.jpg", "valid/0/patch0000012.jpg"):
        source = folder.root / original
        shutil.copy(source, source.with_name("copy_" + source.name))
        folder.files += 1
        folder.duplicates += 1
    (folder.root / "README.md").write_text(
        "not a tile; importers ignore files outside label folders"
    )
    return folder


def write_hdf5_pair(
    directory: Path, split: str, pixels: np.ndarray, labels: np.ndarray, gz: bool = False
) -> Path:
    """PCam's layout: <name>_x.h5 with 'x' (N, 96, 96, 3) and <name>_y.h5 with 'y' (N, 1, 1, 1)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"camelyonpatch_level_2_split_{split}"
    x_path, y_path = directory / f"{stem}_x.h5", directory / f"{stem}_y.h5"
    with h5py.File(x_path, "w") as handle:
        handle.create_dataset("x", data=pixels, chunks=(min(len(pixels), 32), *pixels.shape[1:]))
    with h5py.File(y_path, "w") as handle:
        handle.create_dataset("y", data=labels.reshape(-1, 1, 1, 1))
    if not gz:
        return x_path
    for path in (x_path, y_path):
        with path.open("rb") as src, gzip.open(path.with_name(path.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
    return x_path.with_name(x_path.name + ".gz")


@pytest.fixture
def hdf5_from_folder(tmp_path: Path) -> Callable[..., Path]:
    """Write a folder's tiles (decoded pixels, file order) as PCam HDF5 pairs, one per split."""

    def build(folder: TileFolder, gz: bool = False) -> Path:
        out = tmp_path / "h5"
        for split_dir in sorted(p for p in folder.root.iterdir() if p.is_dir()):
            files = sorted(split_dir.glob("*/*.jpg"))
            pixels = np.stack([folder.decoded(f) for f in files])
            labels = np.array([int(f.parent.name) for f in files], np.uint8)
            write_hdf5_pair(out, split_dir.name, pixels, labels, gz=gz)
        return out

    return build


def write_manifest(
    path: Path, rows: list[list[str]], header: tuple[str, ...] = ("path", "label", "split")
) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- annotated fixture tiles and a tiny generator (generator, utility, experiment tests) ---


@pytest.fixture(scope="module")
def tile_tree(tmp_path_factory) -> Path:
    """64 train + 40 valid tiles, both labels (valid/0 and valid/1)."""
    return write_tile_tree(tmp_path_factory.mktemp("gen") / "tiles")


def write_tile_tree(root: Path) -> Path:
    """64 train + 40 valid PNG tiles under root/<split>/<label>/ that pass the quality filter."""
    for split, n, offset in (("train", 64, 0), ("valid", 40, 5000)):
        for i in range(n):
            label, seed = i % 2, offset + i
            radius = 3.8 if label else 2.8
            image = draw_discs(scattered(14 + i % 9, radius, seed=seed), radius, seed=seed)
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{seed}.png")
    return root


@pytest.fixture
def annotated(tile_tree) -> str:
    import_tiles(tile_tree, "gen-fixture", progress=False)
    annotate_dataset("gen-fixture", clusters=3, progress=False)
    return "gen-fixture"


def train_tiny(dataset: str, name: str = "tiny", previews: bool = True) -> Generator:
    train_generator(
        dataset=dataset,
        scheme="morphology",
        preset="tiny",
        name=name,
        progress=False,
        previews=previews,
        preview_steps=2,  # the tests' cohorts are sampled in 2 steps too
    )
    return Generator.objects.get(name=name)


@dataclass
class TrainedCopy:
    """A trained tiny generator kept for the rest of the test run: its pipeline folder, its
    row's fields and the hashes of the tiles it trained on."""

    folder: Path
    fields: dict
    shas: list[str]


_trained: dict[str, TrainedCopy] = {}


@pytest.fixture
def tiny_generator(annotated, tmp_path_factory) -> Generator:
    """The tiny preset trained on the annotated fixture tiles, registered as "tiny".

    It is trained once per test run; later tests register a copy of that pipeline folder with
    the same fields. Training is deterministic on the CPU (the same tiles, config and seed give
    the same weights: tests/faults check it), so the copy is what training would make again;
    load_pipeline checks its weights against the recorded checksum like any other.
    """
    copy = _trained.get(annotated)
    if copy is None:
        generator = train_tiny(annotated)
        folder = tmp_path_factory.mktemp("tiny-generator") / "pipeline"
        shutil.copytree(generator.path, folder)
        fields = model_to_dict(generator, exclude=["id", "dataset", "path", "training_tiles"])
        shas = sorted(generator.training_tiles.values_list("sha256", flat=True))
        _trained[annotated] = TrainedCopy(folder, fields, shas)
        return generator
    target = generators_root() / "tiny" / "pipeline"
    shutil.copytree(copy.folder, target)
    dataset = Dataset.objects.get(name=annotated)
    generator = Generator.objects.create(**copy.fields, dataset=dataset, path=str(target))
    link_training_tiles(generator, dataset, copy.shas)
    return generator


def fixture_cohort(
    name: str,
    size: int,
    generator: str = "tiny",
    dataset: str = "gen-fixture",
    seed: int = 0,
    runtime: Runtime | None = None,
) -> CohortSummary:
    """A cohort of `size` from the fixture tiles' valid split, sampled in 2 steps."""
    request = CohortRequest(
        generator=generator,
        real_dataset=dataset,
        split="valid",
        size=size,
        name=name,
        seed=seed,
        sampling=SamplingConfig(steps=2),
    )
    return generate_cohort(request, runtime or Runtime(), progress=False)


def tiny_trainer(tmp_path: Path, **overrides: object):
    """A Trainer of the tiny preset (with `overrides`) on 4 random tiles, quiet: for tests of
    what one training step or one batch does."""
    from generation.ldm.train import Trainer, TrainingData
    from generation.presets import PRESETS

    tiles = np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    data = TrainingData(tiles, ["healthy tissue", "tumour tissue"] * 2)
    config = PRESETS["tiny"].generator.replace(**overrides)
    return Trainer(config, data, tmp_path, log=lambda _: None, progress=False)
