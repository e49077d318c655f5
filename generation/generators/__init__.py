"""Generators: training one from the database under a budget (training) and the registry of
trained pipelines, loaded only when their weights match what was registered (registry)."""

from generation import lazy_exports

_EXPORTS = {
    "GeneratorError": "registry",
    "Shard": "registry",
    "generators_root": "registry",
    "load_pipeline": "registry",
    "training_tiles": "registry",
    "TrainSummary": "training",
    "config_for": "training",
    "link_training_tiles": "training",
    "train_generator": "training",
    "training_set": "training",
    "write_previews": "training",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
