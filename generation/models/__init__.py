"""The generation app's models: tiles and annotations (tiles), generators and cohorts
(generators), evaluation results (results). Import them from here."""

from generation.models.generators import Cohort, CohortMember, Generator
from generation.models.results import (
    Experiment,
    FidelityEvaluation,
    FidResult,
    FidResultQuerySet,
    UtilityResult,
)
from generation.models.tiles import (
    SHA256_REGEX,
    Dataset,
    ImportRun,
    LabelChoices,
    MorphologyCluster,
    MorphologyClustering,
    Tile,
    TileAnnotation,
    TileEmbedding,
    TileQuerySet,
)

__all__ = [
    "SHA256_REGEX",
    "Cohort",
    "CohortMember",
    "Dataset",
    "Experiment",
    "FidResult",
    "FidResultQuerySet",
    "FidelityEvaluation",
    "Generator",
    "ImportRun",
    "LabelChoices",
    "MorphologyCluster",
    "MorphologyClustering",
    "Tile",
    "TileAnnotation",
    "TileEmbedding",
    "TileQuerySet",
    "UtilityResult",
]
