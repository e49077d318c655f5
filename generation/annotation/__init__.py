"""Annotations derived from the tiles' pixels: the quality filter and morphometric features
(features), embeddings (embeddings, cached per tile in cache), morphology clusters
(clustering) and the three prompt schemes (prompts). annotate_dataset (annotate) runs them
over a dataset, resumably (manage.py annotate_tiles).

Entry points are resolved on first use (PEP 562): worker processes import
generation.annotation.features without Django set up, so this package must not load the
models when it is imported.
"""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    annotate="AnnotateSummary AnnotationError annotate_dataset fitted_from thresholds",
    prompts="SCHEMES",
)
