"""Pure tests of the quality filter and morphometric features (no database)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops

from generation.annotation.features import (
    FEATURE_NAMES,
    QualityThresholds,
    annotate,
    count_contours,
    hsv_opencv,
    morphometrics,
    nuclear_shapes,
    quality,
    segment_nuclei,
)

EOSIN_BACKGROUND = (236, 178, 214)
HAEMATOXYLIN = (72, 40, 130)


def draw_discs(
    centres: list[tuple[float, float]], radius: float, size: int = 96, seed: int = 0
) -> np.ndarray:
    """Purple discs on pink, with mild noise, as haematoxylin nuclei in eosin stroma."""
    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), np.float64)
    image[:] = EOSIN_BACKGROUND
    yy, xx = np.mgrid[:size, :size]
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = HAEMATOXYLIN
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def scattered(n: int, radius: float, seed: int, size: int = 96) -> list[tuple[float, float]]:
    """n centres at least 2.6 radii apart (separate nuclei)."""
    rng = np.random.default_rng(seed)
    centres: list[tuple[float, float]] = []
    while len(centres) < n:
        c = tuple(rng.uniform(radius + 1, size - radius - 1, 2))
        if all(np.hypot(c[0] - d[0], c[1] - d[1]) > 2.6 * radius for d in centres):
            centres.append(c)
    return centres


@pytest.mark.parametrize(
    ("n", "radius", "seed"), [(10, 4, 0), (25, 3.5, 1), (40, 3, 2), (15, 5, 3)]
)
def test_separate_discs_are_counted_within_ten_percent(n, radius, seed):
    count = len(np.unique(segment_nuclei(draw_discs(scattered(n, radius, seed), radius)))) - 1
    assert abs(count - n) <= 0.1 * n, f"counted {count} of {n}"


def test_touching_pairs_are_split_by_the_watershed():
    pairs = []
    for row in range(4):
        for col in range(3):
            cy, cx = 12 + row * 22, 14 + col * 30
            pairs += [(cy, cx - 4.5), (cy, cx + 4.5)]  # radius 5, centres 9 apart: they touch
    labels = segment_nuclei(draw_discs(pairs, 5))
    count = len(np.unique(labels)) - 1
    assert abs(count - 24) <= 2.4, f"counted {count} of 24 nuclei in 12 touching pairs"


@pytest.mark.parametrize(
    "tile",
    [
        np.full((96, 96, 3), 255, np.uint8),  # glass only
        np.full((96, 96, 3), EOSIN_BACKGROUND, np.uint8),  # stroma, no nuclei
        np.zeros((96, 96, 3), np.uint8),  # black
    ],
    ids=["white", "eosin-only", "black"],
)
def test_empty_tiles_have_no_nuclei_and_finite_features(tile):
    features = morphometrics(tile)
    assert set(features) == set(FEATURE_NAMES)
    assert all(np.isfinite(v) for v in features.values())
    if tile.max() > 0:
        assert features["nuclei_count"] == 0


def test_all_nuclei_tile_is_one_big_region_not_a_crash():
    features = morphometrics(np.full((96, 96, 3), HAEMATOXYLIN, np.uint8))
    assert all(np.isfinite(v) for v in features.values())
    assert features["nuclear_fraction"] > 0.9


def test_vectorised_shapes_agree_with_regionprops():
    labels = segment_nuclei(draw_discs(scattered(20, 4, 7), 4))
    shapes = nuclear_shapes(labels)
    props = regionprops(labels)
    assert np.allclose(shapes["area"], [p.area for p in props])
    assert np.allclose(shapes["eccentricity"], [p.eccentricity for p in props], atol=1e-6)
    assert np.all((shapes["solidity"] > 0.7) & (shapes["solidity"] <= 1.0))


def test_hsv_matches_opencv_conventions():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    h, s, v = hsv_opencv(rgb)
    assert np.allclose(h[0], [0, 60, 120, 0]) and np.allclose(s[0], [255, 255, 255, 0])
    assert np.allclose(v[0], [255, 255, 255, 128])


def test_contours_count_outer_borders_and_holes():
    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True
    mask[4:6, 4:6] = False  # a hole
    mask[12:15, 12:15] = True
    assert count_contours(mask) == 3


def test_quality_rules_reject_blank_and_accept_tissue():
    limits = QualityThresholds()
    blank = annotate(np.full((96, 96, 3), 250, np.uint8), limits)
    assert not blank.accepted
    assert any(r.startswith("mean saturation") for r in blank.reasons)
    tissue = annotate(draw_discs(scattered(30, 3.5, 4), 3.5, seed=4), limits)
    assert tissue.quality.contours >= 1
    assert quality(draw_discs([], 3)).std_hue >= 0


def test_thresholds_are_the_papers():
    t = QualityThresholds()
    assert (t.min_mean_value, t.min_mean_saturation, t.min_std_value, t.min_std_saturation) == (
        70,
        3,
        4,
        4,
    )
    assert (t.min_std_hue, t.min_laplacian_variance, t.min_contours) == (1.5, 100, 10)
