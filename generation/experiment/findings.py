"""The report's "What the numbers say": plain sentences from the stored rows, which scheme won
on each measure and whether the gap exceeds the noise."""

from __future__ import annotations

import math

import numpy as np

from generation.models import UtilityResult


def comparison(rows: list[dict], results: list[UtilityResult]) -> list[str]:
    """Plain sentences from the numbers: which scheme won on each measure, by how much."""
    overall = {r["scheme"]: r["result"] for r in rows if r["label"] is None}
    lines = []
    if overall:
        best = min(overall, key=lambda s: overall[s].fid)
        ranked = ", ".join(
            f"{s} {overall[s].fid:.1f}" for s in sorted(overall, key=lambda s: overall[s].fid)
        )
        lines.append(f"- Lowest FID: **{best}** prompts (FID {ranked}).")
        if "label" in overall and "morphology" in overall:
            a, b = overall["label"], overall["morphology"]
            verdict = "beat" if b.fid < a.fid else "did not beat"
            separated = abs(a.kid_mean - b.kid_mean) > 2 * np.hypot(a.kid_std, b.kid_std)
            lines.append(
                f"- Morphology prompts {verdict} label prompts on FID ({b.fid:.1f} vs "
                f"{a.fid:.1f}); KID x1000 {b.kid_mean * 1000:.2f} vs {a.kid_mean * 1000:.2f}, "
                + (
                    "a gap larger than twice the spread over KID subsets."
                    if separated
                    else "within twice the spread over KID subsets: not separated at this n."
                )
            )
    synthetic = [r for r in results if r.arm == "synthetic"]
    real = next((r for r in results if r.step == "utility:real"), None)
    if synthetic:
        best = max(synthetic, key=lambda r: r.auc)
        lines.append(
            f"- Best classifier on synthetic tiles alone: {best.arm_name}, ROC AUC "
            f"{best.auc:.3f} ({best.auc_low:.3f}-{best.auc_high:.3f})"
            + (
                f", against {real.auc:.3f} for all {real.n_real} real training tiles."
                if real
                else "."
            )
        )
    return lines


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _range(low: float | None, high: float | None) -> str:
    """'0.041-0.097', or '' where either end is missing."""
    return f"{low:.3f}-{high:.3f}" if _finite(low) and _finite(high) else ""


def _interval(low: float | None, high: float | None) -> str:
    """' (0.041-0.097)', or nothing where either end is missing."""
    return f" ({span})" if (span := _range(low, high)) else ""


def _agreement(e) -> str:
    """'morphology 0.063 (0.041-0.097; chance 0.020)', leaving out what is missing."""
    chance = f"chance {e.morphology_chance:.3f}" if _finite(e.morphology_chance) else ""
    parts = [p for p in (_range(e.morphology_low, e.morphology_high), chance) if p]
    return f"{e.generator.scheme} {e.morphology_share:.3f}" + (
        f" ({'; '.join(parts)})" if parts else ""
    )


def fidelity_comparison(evaluations: list) -> list[str]:
    """Plain sentences from each scheme's evaluate_generator row: does a prompt scheme make
    tiles show their label and morphology type better, and can a machine tell them apart?

    Morphology agreement counts a synthetic tile in the morphology type of its stratum, beside
    the share chance would give with that cohort's own marginals. Only morphology prompts name
    the type; label prompts, the paper's baseline, do not, and every other scheme is compared
    with them. A scheme is called apart from label prompts only where the two 95% intervals
    do not overlap. Missing or undefined (NaN) measures are left out."""
    lines: list[str] = []
    morph = [e for e in evaluations if _finite(e.morphology_share)]
    if morph:
        ranked = sorted(morph, key=lambda e: -e.morphology_share)
        line = (
            "- Morphology agreement (synthetic tiles in their stratum's morphology type): "
            + ", ".join(_agreement(e) for e in ranked)
            + "."
        )
        label = next((e for e in morph if e.generator.scheme == "label"), None)
        if label is not None and _range(label.morphology_low, label.morphology_high):
            for other in ranked:
                if other is label or not _range(other.morphology_low, other.morphology_high):
                    continue
                name = other.generator.scheme.capitalize()
                if other.morphology_low > label.morphology_high:
                    verdict = "more often than label prompts (intervals apart)"
                elif label.morphology_low > other.morphology_high:
                    verdict = "less often than label prompts (intervals apart)"
                else:
                    line += f" {name} and label prompts are not separated: their intervals overlap."
                    continue
                line += f" {name} prompts place tiles in their type {verdict}."
        lines.append(line)
    labelled = [e for e in evaluations if _finite(e.label_auc)]
    if labelled:
        ranked = sorted(labelled, key=lambda e: -e.label_auc)
        listed = ", ".join(
            f"{e.generator.scheme} {e.label_auc:.3f}{_interval(e.label_auc_low, e.label_auc_high)}"
            for e in ranked
        )
        real = sorted({round(e.label_auc_real, 3) for e in ranked if _finite(e.label_auc_real)})
        on_real = (
            f"{real[0]:.3f}" if len(real) == 1 else f"{real[0]:.3f}-{real[-1]:.3f}" if real else ""
        )
        lines.append(
            "- Label fidelity (ROC AUC of a real-trained tumour classifier on synthetic tiles "
            f"against their prompted label): {listed}"
            + (f"; the same classifier on real tiles: {on_real}." if on_real else ".")
        )
    readers = [e for e in evaluations if _finite(e.reader_auc)]
    if readers:
        listed = ", ".join(
            f"{e.generator.scheme} {e.reader_auc:.3f}"
            for e in sorted(readers, key=lambda e: abs(e.reader_auc - 0.5))
        )
        lines.append(
            f"- Machine reader (CNN telling synthetic from real; 0.5 cannot tell): {listed}."
        )
    return lines
