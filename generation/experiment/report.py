"""run_experiment's report: a Markdown page with tables and PNG plots, written from the rows the
steps stored (FidResult, UtilityResult, Generator, Cohort), so it can be rewritten at any time."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch
from django.utils import timezone

from generation.cohorts import sample_tiles
from generation.experiment.findings import comparison, fidelity_comparison
from generation.models import (
    Cohort,
    Experiment,
    FidelityEvaluation,
    FidResult,
    Generator,
    Tile,
    UtilityResult,
)
from generation.plots import fidelity_profile, pyplot, sample_grid, save, short_caption

PAPER = (
    "Osorio et al. (arXiv 2312.09792) report FID 178.8 with label prompts and 90.2 with "
    "morphology prompts (Stable Diffusion 1.5 fine-tuned at 512 px, up to 50k vs 50k tiles), "
    "and ROC AUC 0.805 for a classifier trained on synthetic tiles alone."
)


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = os.cpu_count()
    return f"{platform.node() or 'host'}: {cores} CPU cores, {device}, torch {torch.__version__}"


def fid_rows(experiment: Experiment, schemes: tuple[str, ...]) -> list[dict]:
    rows = []
    for scheme in schemes:
        cohort = f"{experiment.name}-{scheme}"
        for label in (None, 0, 1):
            result = (
                FidResult.objects.filter(cohort__name=cohort, floor=False, label=label)
                .prefetch_related("floors")
                .order_by("-created_at")
                .first()
            )
            if result is None:
                continue
            rows.append(
                {"scheme": scheme, "label": label, "result": result, "floor": result.floor_row}
            )
    return rows


def arm_results(experiment: Experiment, options) -> list[UtilityResult]:
    """The experiment's utility results in the order of its arms."""
    order = {step: i for i, (step, _, _) in enumerate(options.arms())}
    results = (
        UtilityResult.objects.filter(experiment=experiment)
        .exclude(step="")
        .select_related("generator", "cohort")
    )
    return sorted(results, key=lambda r: order.get(r.step, 99))


def _label(label: int | None) -> str:
    return {None: "both", 0: "healthy", 1: "tumour"}[label]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def fid_table(rows: list[dict]) -> list[str]:
    lines = [
        "| scheme | label | n synthetic / real | FID | KID x1000 (± sd) | precision / recall "
        "| floor FID | floor KID x1000 | floor n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r, f = row["result"], row["floor"]
        floor = f"{f.fid:.1f} | {f.kid_mean * 1000:.2f} | {f.n_a}" if f else "- | - | -"
        lines.append(
            f"| {row['scheme']} | {_label(row['label'])} | {r.n_a} / {r.n_b} | {r.fid:.1f} "
            f"| {r.kid_mean * 1000:.2f} (± {r.kid_std * 1000:.2f}) "
            f"| {_fmt(r.precision, 2)} / {_fmt(r.recall, 2)} | {floor} |"
        )
    return lines


def fidelity_rows(experiment: Experiment, schemes: tuple[str, ...]) -> list:
    """The latest evaluate_generator result of each scheme's cohort, in scheme order."""

    rows = []
    for scheme in schemes:
        found = (
            FidelityEvaluation.objects.filter(cohort__name=f"{experiment.name}-{scheme}")
            .select_related("generator", "cohort", "utility")
            .first()
        )
        if found is not None:
            rows.append(found)
    return rows


def fidelity_table(rows: list) -> list[str]:
    lines = [
        "| scheme | n synthetic / real | FID (floor) | rFID · PSNR · SSIM of the autoencoder "
        "| label fidelity AUC (on real tiles) | morphology agreement (chance) "
        "| machine reader AUC, CNN (image statistics) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        lines.append(
            f"| {e.generator.scheme} | {e.n_synthetic} / {e.n_real} | {e.fid:.1f} "
            f"({e.floor_fid:.1f}) | {_fmt(e.rfid, 1)} · {_fmt(e.psnr, 1)} dB · {_fmt(e.ssim)} "
            f"| {_fmt(e.label_auc)} ({_fmt(e.label_auc_low)}-{_fmt(e.label_auc_high)}; "
            f"{_fmt(e.label_auc_real)}) | {_fmt(e.morphology_share)} ({_fmt(e.morphology_chance)})"
            f" | {_fmt(e.reader_auc)} ({_fmt(e.statistics_reader_auc)}) |"
        )
    return lines


def utility_table(results: list[UtilityResult]) -> list[str]:
    lines = [
        "| arm | trained on (real + synthetic) | steps | tested on | ROC AUC (95% CI, DeLong) "
        "| accuracy | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.arm_name}{' (n matched)' if r.step == 'utility:real-n' else ''} "
            f"| {r.n_real} + {r.n_synthetic} | {r.steps} | {r.n_test} ({r.n_test_tumour} tumour) "
            f"| {r.auc:.3f} ({r.auc_low:.3f}-{r.auc_high:.3f}) "
            f"| {r.accuracy:.3f} ({r.accuracy_low:.3f}-{r.accuracy_high:.3f}) "
            f"| {r.sensitivity:.3f} ({r.sensitivity_low:.3f}-{r.sensitivity_high:.3f}) "
            f"| {r.specificity:.3f} ({r.specificity_low:.3f}-{r.specificity_high:.3f}) |"
        )
    return lines


def plot_fid(rows: list[dict], out: Path) -> Path:

    overall = [r for r in rows if r["label"] is None]
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.6), dpi=110)
    names = [r["scheme"] for r in overall]
    x = np.arange(len(names))
    colours = ["#c97fb5", "#8e5ba6", "#4b2a7a"][: len(names)] or ["#8e5ba6"]
    axes[0].bar(x, [r["result"].fid for r in overall], color=colours)
    axes[1].bar(
        x,
        [r["result"].kid_mean * 1000 for r in overall],
        yerr=[r["result"].kid_std * 1000 for r in overall],
        color=colours,
        capsize=4,
    )
    floors = [r["floor"] for r in overall if r["floor"]]
    if floors:
        axes[0].axhline(floors[0].fid, color="#333", ls="--", label="real vs real (floor)")
        axes[1].axhline(floors[0].kid_mean * 1000, color="#333", ls="--", label="floor")
        axes[0].legend(fontsize=8)
    n = overall[0]["result"].n_a if overall else 0
    for ax, title in zip(
        axes, ("FID (lower is better)", "KID x1000 (± sd over subsets)"), strict=True
    ):
        ax.set_xticks(x, names)
        ax.set_xlabel("prompt scheme")
        ax.set_title(f"{title}, n = {n} synthetic", fontsize=10)
    return save(fig, out)


def plot_utility(results: list[UtilityResult], out: Path) -> Path:

    fig, ax = pyplot().subplots(figsize=(8, 0.5 * len(results) + 1.4), dpi=110)
    y = np.arange(len(results))[::-1]
    aucs = np.array([r.auc for r in results])
    low = aucs - np.array([r.auc_low for r in results])
    high = np.array([r.auc_high for r in results]) - aucs
    colours = {"real": "#4b2a7a", "synthetic": "#c97fb5", "mixed": "#8e5ba6"}
    ax.errorbar(aucs, y, xerr=[low, high], fmt="none", ecolor="#555", capsize=3)
    ax.scatter(aucs, y, c=[colours[r.arm] for r in results], zorder=3)
    ax.axvline(0.5, color="#999", ls=":", label="chance")
    ax.set_yticks(
        y, [r.arm_name + (" (n matched)" if r.step == "utility:real-n" else "") for r in results]
    )
    ax.set_xlim(0.4, 1.0)
    sizes = sorted({r.n_test for r in results})
    ax.set_xlabel(f"ROC AUC on held-out real tiles, n = {'/'.join(map(str, sizes))} "
                  "(95% DeLong CI)")  # fmt: skip
    ax.legend(fontsize=8, loc="upper center")
    return save(fig, out)


def sample_grids(experiment: Experiment, schemes: tuple[str, ...], folder: Path) -> list[str]:

    written = []
    real_done = False
    for scheme in schemes:
        cohort = Cohort.objects.filter(name=f"{experiment.name}-{scheme}").first()
        if cohort is None or not Tile.objects.filter(cohort=cohort).exists():
            continue
        synthetic, real, prompts = sample_tiles(cohort)
        captions = [short_caption(p) for p in prompts]
        sample_grid(synthetic, captions, folder / f"samples-{scheme}.png")
        written.append(scheme)
        if not real_done:
            sample_grid(real, captions, folder / "samples-real.png")
            real_done = True
    return written


def measured_minutes(steps: dict[str, dict]) -> float:
    """Minutes the experiment's steps took, over all runs, the writing of the report left out:
    a report rewritten with --report or --notes then states the same figure each time."""
    return sum(s.get("seconds", 0) for name, s in steps.items() if name != "report") / 60


def write_report(experiment: Experiment, options, folder: Path, notes: Path | None = None) -> Path:
    """report.md and its plots in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    schemes = tuple(options.schemes)
    rows = fid_rows(experiment, schemes)
    results = arm_results(experiment, options)
    generators = [
        g for s in schemes if (g := Generator.objects.filter(name=f"{experiment.name}-{s}").first())
    ]
    steps = experiment.steps
    total = measured_minutes(steps)
    md = [
        f"# Experiment `{experiment.name}`: does the prompt scheme matter?",
        "",
        f"Written by `manage.py run_experiment` on {timezone.now():%Y-%m-%d %H:%M} UTC, "
        f"{machine()}.",
        "",
        f"Dataset `{options.dataset}`: generators trained on split `{options.train_split}`, "
        f"cohorts of {options.cohort_size} real + {options.cohort_size} synthetic tiles drawn "
        f"from split `{options.test_split}` (the same real tiles and seeds for every scheme), "
        f"preset `{options.preset}`, budget {options.budget_minutes:g} min, "
        f"{total:.1f} min spent. {PAPER}",
        "",
        "## Generators",
        "",
        "| scheme | tiles trained | autoencoder steps | denoiser steps | minutes | last loss |",
        "|---|---|---|---|---|---|",
        *[
            f"| {g.scheme} | {g.tiles_trained} | {g.vae_steps} | {g.unet_steps} "
            f"| {g.wall_seconds / 60:.1f} | {_fmt(g.final_loss, 4)} |"
            for g in generators
        ],
        "",
        "## Image quality: FID and KID against real tiles",
        "",
        "Inception-v3 pool features; the floor is as many other held-out real tiles as the "
        "synthetic set against the same reference, so it is measured at the same pair of "
        "sizes. FID is biased upwards at small n: compare FIDs only at equal n (they are equal "
        "here), and lean on KID, which is unbiased.",
        "",
        *fid_table(rows),
        "",
    ]
    if rows:
        plot_fid(rows, folder / "fid.png")
        md += ["![FID and KID per prompt scheme](./fid.png)", ""]
    evaluations = fidelity_rows(experiment, schemes)
    md += [
        "## Fidelity: does a tile show what its prompt asked for, and can a machine tell?",
        "",
        "From `evaluate_generator` on each cohort: its real half is the reference, and a second "
        "draw of held-out real tiles of the same strata and size is the floor and what the "
        "autoencoder reconstructs. Label fidelity: a tumour classifier trained on the real "
        "training tiles, applied to synthetic tiles and scored against their prompted label. "
        "Morphology agreement: the share of synthetic tiles whose nearest morphology type is "
        "the one in their stratum. Machine reader: a CNN, and a logistic regression on image "
        "statistics, trained on held-out folds to tell synthetic from real after the study's "
        "presentation pipeline (0.5: cannot tell).",
        "",
        *fidelity_table(evaluations),
        "",
    ]
    for e in evaluations:
        image = f"fidelity-{e.generator.scheme}.png"
        fidelity_profile(e, folder / image)
        md += [f"![fidelity of the {e.generator.scheme} generator](./{image})", ""]
    md += [
        "## Utility: a tumour classifier trained on each arm, tested on held-out real tiles",
        "",
        "Same CNN, optimiser steps, batch and augmentation for every arm; tested on real tiles "
        f"of `{options.test_split}` that no arm trained on and that are not in any cohort. "
        "'n matched' trains on as many real tiles as a cohort has synthetic ones; mixed arms "
        "draw half of each batch from real training tiles and half from synthetic ones.",
        "",
        *utility_table(results),
        "",
    ]
    if results:
        plot_utility(results, folder / "utility.png")
        md += ["![ROC AUC per arm](./utility.png)", ""]
    grids = sample_grids(experiment, schemes, folder)
    if grids:
        md += [
            "## Samples",
            "",
            "The same 16 cohort positions for every scheme (spread over both labels and "
            "many morphology types), captioned with the prompt; real tiles of those "
            "positions last.",
            "",
        ]
        md += [f"**{s} prompts**\n\n![{s} samples](./samples-{s}.png)\n" for s in grids]
        md += ["**real tiles, same positions**\n\n![real tiles](./samples-real.png)", ""]
    md += [
        "## What the numbers say",
        "",
        *comparison(rows, results),
        *fidelity_comparison(evaluations),
        "",
    ]
    md += [
        "## Steps",
        "",
        "| step | minutes |",
        "|---|---|",
        *[f"| {k} | {v.get('seconds', 0) / 60:.1f} |" for k, v in steps.items() if k != "report"],
        "",
    ]
    if notes is not None:
        md += ["## Notes", "", notes.read_text().strip(), ""]
    out = folder / "report.md"
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(out)
    return out
