"""A FidelityEvaluation as lines for people and as one JSON-ready dict for scripts."""

from __future__ import annotations

from generation.models import FidelityEvaluation

FIELDS = (
    "n_synthetic", "n_real", "n_floor", "seed", "fid", "kid", "precision", "recall",
    "floor_fid", "floor_kid", "floor_precision", "floor_recall", "rfid", "psnr", "ssim",
    "label_auc", "label_auc_low", "label_auc_high", "label_auc_real", "morphology_share",
    "morphology_low", "morphology_high", "morphology_chance", "reader_auc", "reader_auc_low",
    "reader_auc_high", "statistics_reader_auc", "seconds",
)  # fmt: skip


def summary_dict(e: FidelityEvaluation) -> dict:
    data = {f: getattr(e, f) for f in FIELDS}
    data.update(
        id=e.pk,
        generator=e.generator.name,
        cohort=e.cohort.name,
        utility_auc=e.utility.auc if e.utility else None,
        utility_auc_low=e.utility.auc_low if e.utility else None,
        utility_auc_high=e.utility.auc_high if e.utility else None,
        details=e.details,
    )
    return data


def _num(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.3f}"


def _f(value: float | None) -> str:
    """An interval end, or n/a where there is none (one case of a class: no DeLong variance)."""
    return "n/a" if value is None else f"{value:.3f}"


def summary_lines(e: FidelityEvaluation) -> list[str]:
    lines = [
        f"Evaluated generator {e.generator.name!r} on cohort {e.cohort.name!r} in "
        f"{e.seconds / 60:.1f} min: {e.n_synthetic} synthetic vs {e.n_real} held-out real "
        f"tiles; floor: {e.n_floor} other held-out real tiles of the same strata",
        f"  FID              {e.fid:7.2f}   (floor {e.floor_fid:.2f}; lower is better)",
        f"  KID x1000        {e.kid * 1e3:7.2f}   (floor {e.floor_kid * 1e3:.2f})",
        f"  precision        {_num(e.precision)}   (floor {_num(e.floor_precision)})",
        f"  recall           {_num(e.recall)}   (floor {_num(e.floor_recall)})",
    ]
    if (e.details or {}).get("floor_note"):
        lines.append(f"  note: {e.details['floor_note']}")
    if e.rfid is not None:
        lines.append(
            f"  autoencoder      rFID {e.rfid:.2f} ({e.rfid / max(e.floor_fid, 1e-9):.2f}x the "
            f"floor), PSNR {e.psnr:.2f} dB, SSIM {e.ssim:.3f}"
        )
    if e.label_auc is not None:
        lines.append(
            f"  label fidelity   AUC {e.label_auc:.3f} ({_f(e.label_auc_low)}-"
            f"{_f(e.label_auc_high)}) of a real-trained tumour classifier on synthetic tiles; "
            f"{e.label_auc_real:.3f} on the real ones"
        )
    if e.morphology_share is not None:
        lines.append(
            f"  morphology       {e.morphology_share:.3f} ({e.morphology_low:.3f}-"
            f"{e.morphology_high:.3f}) of synthetic tiles in their prompted morphology type; "
            f"chance {e.morphology_chance:.3f}"
        )
    if e.reader_auc is not None:
        lines.append(
            f"  machine reader   AUC {e.reader_auc:.3f} ({_f(e.reader_auc_low)}-"
            f"{_f(e.reader_auc_high)}) for a CNN telling synthetic from real after the "
            f"presentation pipeline; {e.statistics_reader_auc:.3f} from image statistics "
            "(0.5: cannot tell)"
        )
    if e.utility is not None:
        u = e.utility
        lines.append(
            f"  utility          AUC {u.auc:.3f} ({u.auc_low:.3f}-{u.auc_high:.3f}) on "
            f"{u.n_test} real tiles for a classifier trained on the synthetic tiles alone"
        )
    return lines
