"""Generators: training one from the database under a budget (training) and the registry of
trained pipelines, loaded only when their weights match what was registered (registry)."""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    registry="GeneratorError Shard TrainingTimeError check_trained generators_root load_pipeline "
    "training_tiles",
    training="TrainSummary config_for flush_denormals link_training_tiles train_generator "
    "training_set write_previews",
)
