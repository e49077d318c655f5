"""Prompt templates and clusters (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from generation.annotation import prompts as P
from generation.annotation.clustering import fit_clusters


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (12, "twelve"),
        (19, "nineteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (32, "thirty-two"),
        (99, "ninety-nine"),
        (105, "one hundred and five"),
    ],
)
def test_number_words(n, words):
    assert P.number_words(n) == words


def test_label_and_morphology_prompts_are_the_papers_character_for_character():
    assert P.label_prompt(0) == "Histology image of healthy tissue"
    assert P.label_prompt(1) == "Histology image of cancer tissue"
    assert P.morphology_prompt(1, 12) == "Histology image of cancer tissue, morphology type twelve"


def test_features_prompt_uses_fitted_tertiles():
    rng = np.random.default_rng(0)
    data = {a.feature: rng.uniform(0, 1, 300) for a in P.ATTRIBUTES}
    vocabulary = P.fit_vocabulary(data)
    assert P.vocabulary_from_json(P.vocabulary_to_json(vocabulary)) == vocabulary
    high = {a.feature: 0.99 for a in P.ATTRIBUTES}
    assert P.features_prompt(1, 12, high, vocabulary) == (
        "Histology image of cancer tissue, morphology type twelve, dense nuclei, large nuclei, "
        "dark haematoxylin, dark eosin"
    )
    low = {a.feature: 0.01 for a in P.ATTRIBUTES}
    assert P.features_prompt(0, 0, low, vocabulary).endswith(
        "type zero, sparse nuclei, small nuclei, pale haematoxylin, pale eosin"
    )
    words = [P.ATTRIBUTES[0].words.index(vocabulary[0].word(v)) for v in data["nuclei_density"]]
    assert np.bincount(words).min() >= 90  # tertiles: about a third in each bin


def test_clusters_are_seeded_and_assign_like_kmeans():
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(c, 0.3, (50, 4)) for c in (0, 3, 6)])
    a, b = fit_clusters(blobs, k=3, seed=5), fit_clusters(blobs, k=3, seed=5)
    assert np.array_equal(a.centres, b.centres)
    assigned = a.assign(blobs)
    assert sorted(np.bincount(assigned)) == [50, 50, 50]
    assert np.array_equal(a.assign(blobs + 1e-9), assigned)


def test_too_few_tiles_for_k_is_an_error():
    with pytest.raises(ValueError, match="3 accepted tiles cannot make 33 clusters"):
        fit_clusters(np.zeros((3, 2)), k=33)
