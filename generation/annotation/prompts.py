"""Prompt schemes (pure): the paper's label and morphology prompts, and feature-enriched ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("label", "morphology", "features")
LABEL_WORDS = {0: "healthy", 1: "cancer"}  # the paper's wording

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """0..999 in English words, as the paper writes cluster indices: 12 -> 'twelve'."""
    if not 0 <= n < 1000:
        raise ValueError(f"cluster index {n} outside 0..999")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")


def label_prompt(label: int) -> str:
    return f"Histology image of {LABEL_WORDS[label]} tissue"


def morphology_prompt(label: int, cluster: int) -> str:
    return f"{label_prompt(label)}, morphology type {number_words(cluster)}"


@dataclass(frozen=True)
class Attribute:
    """A feature binned at dataset quantiles into plain words, e.g. sparse/moderate/dense nuclei."""

    feature: str
    words: tuple[str, str, str]
    edges: tuple[float, float] = (0.0, 0.0)  # tertile edges, fitted on a dataset

    def word(self, value: float) -> str:
        return self.words[int(np.searchsorted(self.edges, value, side="right"))]


ATTRIBUTES = (
    Attribute("nuclei_density", ("sparse nuclei", "moderately dense nuclei", "dense nuclei")),
    Attribute("nuclear_area_mean", ("small nuclei", "medium nuclei", "large nuclei")),
    Attribute(
        "haematoxylin_mean", ("pale haematoxylin", "moderate haematoxylin", "dark haematoxylin")
    ),
    Attribute("eosin_mean", ("pale eosin", "moderate eosin", "dark eosin")),
)


def fit_vocabulary(features: dict[str, np.ndarray]) -> list[Attribute]:
    """Tertile edges of each attribute's feature over a dataset's accepted tiles."""
    fitted = []
    for attribute in ATTRIBUTES:
        low, high = np.quantile(features[attribute.feature], [1 / 3, 2 / 3])
        fitted.append(Attribute(attribute.feature, attribute.words, (float(low), float(high))))
    return fitted


def vocabulary_to_json(vocabulary: list[Attribute]) -> list[dict]:
    return [
        {"feature": a.feature, "words": list(a.words), "edges": list(a.edges)} for a in vocabulary
    ]


def vocabulary_from_json(data: list[dict]) -> list[Attribute]:
    return [Attribute(d["feature"], tuple(d["words"]), tuple(d["edges"])) for d in data]


def features_prompt(
    label: int, cluster: int, features: dict[str, float], vocabulary: list[Attribute]
) -> str:
    words = ", ".join(a.word(features[a.feature]) for a in vocabulary)
    return f"{morphology_prompt(label, cluster)}, {words}"


def prompts_for(
    label: int, cluster: int, features: dict[str, float], vocabulary: list[Attribute]
) -> dict[str, str]:
    """All three schemes' prompts for one tile."""
    return {
        "label": label_prompt(label),
        "morphology": morphology_prompt(label, cluster),
        "features": features_prompt(label, cluster, features, vocabulary),
    }
