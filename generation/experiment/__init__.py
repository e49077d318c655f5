"""The paper's comparison in one resumable command (manage.py run_experiment): runner trains,
generates and measures each prompt scheme; report writes the tables, plots and sample grids."""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    options="ExperimentError Options experiment_dir options_for",
    report="arm_results fid_rows write_report",
    runner="run_experiment",
)
