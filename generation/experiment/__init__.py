"""The paper's comparison in one resumable command (manage.py run_experiment): runner trains,
generates and measures each prompt scheme; report writes the tables, plots and sample grids."""

from generation import lazy_exports

_EXPORTS = {
    "ExperimentError": "options",
    "Options": "options",
    "options_for": "options",
    "arm_results": "report",
    "fid_rows": "report",
    "write_report": "report",
    "experiment_dir": "options",
    "run_experiment": "runner",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
