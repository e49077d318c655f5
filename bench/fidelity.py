"""Quality against training budget: the cpu preset trained for N minutes, scored as a user would.

    .venv/bin/python bench/fidelity.py run --minutes 10 [--preset cpu] [--workdir DIR]
    .venv/bin/python bench/fidelity.py table [--plot docs/fidelity-budget.png]

`run` imports and annotates the PCam sample into --workdir (once), trains the preset on its
train split for --minutes (named `bench-PRESET-Nm`; an existing one is reused), then measures:
- evaluate_generator on split valid: --n synthetic vs --n held-out real tiles, the floor at the
  same sizes, the autoencoder's rFID/PSNR/SSIM, label and morphology fidelity, the machine
  readers and a classifier trained on the synthetic tiles alone;
- the demo's criterion: FID of 300 synthetic tiles against 1,000 real ones (compute_fid), with
  its floor at the same sizes;
- sample grids: 64 synthetic tiles with their prompts and the real tiles of the same strata.
Each run appends one JSON line (figures, steps, commit, machine, date) to
docs/fidelity-runs.jsonl, so runs made at different times keep their commit. `table` prints
every recorded run against the targets and draws the quality-versus-budget plot.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = ROOT / "docs" / "fidelity-runs.jsonl"
# the targets of the fidelity issue for the cpu preset trained 60 minutes, 1,000 vs 1,000
TARGETS = {
    "fid": ("<=", 80.0),
    "precision": (">=", 0.30),
    "recall": (">=", 0.10),
    "label_auc": (">=", 0.85),
    "reader_auc": ("<=", 0.90),
    "utility_auc": (">=", 0.75),
    "rfid_over_floor": ("<=", 2.0),
}


def setup(workdir: Path, pcam: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="histostudy.settings",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        MEDIA_ROOT=str(workdir / "media"),
        HISTOSTUDY_CACHE_DIR=str(workdir / "cache"),
    )
    import django

    django.setup()
    from django.core.management import call_command

    from generation.models import Dataset

    call_command("migrate", verbosity=0)
    if not Dataset.objects.filter(name="pcam-sample").exists():
        call_command("import_tiles", str(pcam), dataset="pcam-sample", stdout=StringIO())
        call_command("annotate_tiles", dataset="pcam-sample", stdout=StringIO())


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    import torch

    from generation.ldm.precision import cpu_has_amx

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()}: {os.cpu_count()} CPU cores{' with AMX' if cpu_has_amx() else ''}, "
        f"{gpu}, torch {torch.__version__}"
    )


def run(args: argparse.Namespace) -> None:
    setup(args.workdir, args.pcam)
    from django.core.management import call_command

    from generation.cohorts import CohortRequest, generate_cohort, sample_tiles
    from generation.evaluation import (
        MEASURES,
        EvaluationRequest,
        evaluate_generator,
        summary_dict,
    )
    from generation.generators import train_generator
    from generation.models import Generator
    from generation.plots import sample_grid, short_caption

    overrides = dict(item.split("=", 1) for item in args.set)
    name = args.name or f"bench-{args.preset}-{args.minutes:g}m"
    if not Generator.objects.filter(name=name).exists():
        train_generator(dataset="pcam-sample", scheme=args.scheme, preset=args.preset,
                        name=name, overrides=overrides, max_minutes=args.minutes,
                        resume=True)  # fmt: skip
    generator = Generator.objects.get(name=name)
    started = time.perf_counter()
    skipped = set(args.skip.split(",")) if args.skip else set()
    measures = tuple(m for m in MEASURES if m not in skipped)
    request = EvaluationRequest(generator=name, size=args.n, seed=args.seed, measures=measures)
    evaluation = evaluate_generator(request)
    figures = summary_dict(evaluation)
    small = f"{name}-valid-300"  # the demo's criterion: 300 synthetic vs 1,000 real
    if args.n == 300:  # the evaluation cohort is one already
        small = evaluation.cohort.name
    else:
        generate_cohort(
            CohortRequest(
                generator=name,
                real_dataset="pcam-sample",
                split="valid",
                size=300,
                name=small,
                seed=args.seed,
            )
        )
    out = StringIO()
    call_command("compute_fid", cohort=small, floor=True, precision_recall=True,
                 max_tiles=1000, json=True, stdout=out)  # fmt: skip
    fid300, floor300 = json.loads(out.getvalue())
    synthetic, real, prompts = sample_tiles(evaluation.cohort, 64)
    captions = [short_caption(p) for p in prompts]
    grids = ROOT / "docs" / "samples"
    sample_grid(synthetic, captions, grids / f"{name}.png")
    sample_grid(real, captions, grids / f"{name}-real.png")
    own = {
        "name": name,
        "preset": args.preset,
        "minutes": args.minutes,
        "set": overrides,
        "vae_steps": generator.vae_steps,
        "unet_steps": generator.unet_steps,
        "train_seconds": generator.wall_seconds,
        "fid300_vs_1000": fid300["fid"],
        "floor300_vs_1000": floor300["fid"],
        "evaluate_seconds": time.perf_counter() - started,
        "commit": commit(),
        "machine": machine(),
        # what the generator trained in (histostudy.json): "bf16" or "no" (fp32); not
        # "precision", which the figures use for precision/recall
        "trained_in": json.loads((Path(generator.path) / "histostudy.json").read_text()).get(
            "precision"
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "timings": figures["details"]["timings"],
    }
    record = merge_figures(own, figures)
    with RUNS.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    print("\n".join(table([record])))


def merge_figures(own: dict, figures: dict) -> dict:
    """A run's record: its own fields, then the evaluation's figures (less their details). A
    figure named like one of the run's own fields would overwrite it unseen, as precision/recall
    once overwrote the training precision, so a clash is an error naming the fields."""
    figures = {k: v for k, v in figures.items() if k != "details"}
    clash = sorted(own.keys() & figures.keys())
    if clash:
        raise ValueError(f"evaluation figures named like the run's own fields: {', '.join(clash)}")
    return {**own, **figures}


def _verdict(record: dict, key: str) -> str:
    if key not in TARGETS or record.get(key) is None:
        return ""
    op, bound = TARGETS[key]
    ok = record[key] <= bound if op == "<=" else record[key] >= bound
    return " ok" if ok else " MISS"


def table(records: list[dict]) -> list[str]:
    def f(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    columns = [
        ("run", lambda r: r["name"], 22),
        ("min", lambda r: f"{r['minutes']:g}", 4),
        ("steps ae+dn", lambda r: f"{r['vae_steps']}+{r['unet_steps']}", 11),
        ("n", lambda r: f"{r['n_synthetic']}v{r['n_real']}", 9),
        ("FID (floor)", lambda r: f"{f(r['fid'], 1)} ({f(r['floor_fid'], 1)})", 13),
        ("FID300", lambda r: f"{f(r['fid300_vs_1000'], 1)} ({f(r['floor300_vs_1000'], 1)})", 13),
        ("P / R", lambda r: f"{f(r['precision'], 2)}/{f(r['recall'], 2)}", 9),
        ("rFID/floor", lambda r: f(r["rfid_over_floor"], 2), 10),
        ("PSNR", lambda r: f(r["psnr"], 1), 5),
        ("label AUC", lambda r: f(r["label_auc"]), 9),
        ("morph (chance)",
         lambda r: f"{f(r['morphology_share'], 2)} ({f(r['morphology_chance'], 2)})", 14),
        ("reader AUC", lambda r: f(r["reader_auc"]), 10),
        ("stats AUC", lambda r: f(r["statistics_reader_auc"]), 9),
        ("synth-only AUC", lambda r: f(r["utility_auc"]), 14),
        ("commit", lambda r: r["commit"], 15),
    ]  # fmt: skip
    lines = ["  ".join(f"{title:<{width}}" for title, _, width in columns)]
    for record in records:
        record = {**record, "rfid_over_floor": record["rfid"] / record["floor_fid"]}
        cells = [f"{cell(record):<{width}}" for _, cell, width in columns]
        lines.append("  ".join(cells))
        misses = [k for k in TARGETS if _verdict(record, k) == " MISS"]
        if record["minutes"] >= 60:
            lines.append(
                "    targets at 60 min: " + (f"missed {', '.join(misses)}" if misses else "all met")
            )
    return lines


def _value(record: dict, key: str) -> float:
    return float("nan") if record.get(key) is None else record[key]


def cpu_kind(record: dict) -> str:
    """'amx', 'bf16' (no AMX, trained in bf16) or 'fp32', from a record's machine line and the
    precision its generator trained in (records before 2026-12-06 lack it: then AMX meant bf16
    and no AMX fp32)."""
    if "with AMX" in record["machine"]:
        return "amx"
    return "bf16" if record.get("trained_in") == "bf16" else "fp32"


# each version of the cpu preset since the first fidelity runs, oldest first: the commit from
# which runs train it and what it changed. A run's version is the newest one its commit descends
# from; runs before the first entry trained 8 latent channels on rotated codes. Each version gets
# curves of its own, the newest solid.
CPU_VERSIONS = (
    ("add0171", "4 latent ch"),
    ("91ee34e", "4 latent ch + code penalty"),
)
EARLIEST_CPU = "8 latent ch"


def cpu_version(record: dict) -> int:
    """Which version of the cpu preset a run trained: 0 before the first of CPU_VERSIONS, else
    1 + the index of the newest version its commit (a "+changes" suffix dropped) descends from.
    A commit this clone does not know counts as 0."""
    commit = str(record.get("commit", "")).split("+")[0]
    version = 0
    for index, (since, _) in enumerate(CPU_VERSIONS, 1):
        if _descends_from(since, commit):
            version = index
    return version


@functools.cache
def _descends_from(since: str, commit: str) -> bool:
    """One git call a pair, however many curves ask (plot filters every record per curve)."""
    found = subprocess.run(
        ["git", "merge-base", "--is-ancestor", since, commit],
        cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    return found.returncode == 0


def plot(records: list[dict], out: Path) -> None:
    from matplotlib.lines import Line2D

    from generation.plots import pyplot, save

    plt = pyplot()

    # the legend of the curves gets a row of its own under both panels, so neither shrinks
    fig, axes = plt.subplot_mosaic([["left", "right"], ["legend", "legend"]], figsize=(11, 6.2),
                                   dpi=110, height_ratios=(3.4, 1))  # fmt: skip
    left, right, below = axes["left"], axes["right"], axes["legend"]
    # (preset, version of the cpu preset, CPU kind, colour, line style, label): a CPU's speed
    # class buys its own steps per minute, and each version of the preset has its own curves
    kinds = (("amx", "Purples", "AMX, bf16"), ("bf16", "Greens", "no AMX, bf16"),
             ("fp32", "Greys", "no AMX, fp32"))  # fmt: skip
    names = (EARLIEST_CPU, *(f"{what} (since {since})" for since, what in CPU_VERSIONS))
    newest = len(CPU_VERSIONS)
    series = [
        ("cpu", version, kind, plt.get_cmap(cmap)(0.35 + 0.6 * version / newest),
         "-" if version == newest else "--", f"cpu preset, {name}, {machine}")
        for version, name in enumerate(names)
        for kind, cmap, machine in kinds
    ]  # fmt: skip
    series.append(("cpu-v1", 0, "amx", "#c97fb5", "-", "old recipe (cpu-v1), AMX"))
    handles = []
    for preset, version, kind, colour, style, label in series:
        # the budget curve: the preset as it is, not the ablations run with --set
        rows = [
            r
            for r in records
            if r["preset"] == preset
            and not r.get("set")
            and cpu_kind(r) == kind
            and (preset != "cpu" or cpu_version(r) == version)
        ]
        rows.sort(key=lambda r: r["minutes"])
        if not rows:
            continue
        minutes = [r["minutes"] for r in rows]
        # FID300 (300 synthetic vs 1,000 real) is measured the same way in every run
        left.plot(minutes, [_value(r, "fid300_vs_1000") for r in rows], "o", ls=style,
                  color=colour)  # fmt: skip
        for key, marker in (("label_auc", "o"), ("utility_auc", "^"), ("reader_auc", "x")):
            right.plot(minutes, [_value(r, key) for r in rows], marker, ls=style, color=colour)
        handles.append(Line2D([], [], color=colour, ls=style, marker="o", label=label))
    floors = [r["floor300_vs_1000"] for r in records]
    if floors:
        left.axhline(min(floors), color="#999", ls=":")
        handles.append(Line2D([], [], color="#999", ls=":", label="real-vs-real floor (FID)"))
    left.axhline(120, color="#333", ls="-.", lw=0.8)
    handles.append(
        Line2D([], [], color="#333", ls="-.", lw=0.8, label="target at 10 min (FID300 < 120)")
    )
    left.set_xlabel("training minutes on the 2-core VM")
    left.set_ylabel("FID, 300 synthetic vs 1,000 real")
    left.set_ylim(bottom=0)
    right.axhline(0.5, color="#999", ls=":")
    right.set_xlabel("training minutes on the 2-core VM")
    right.set_ylabel("ROC AUC")
    right.set_ylim(0.3, 1.05)
    measures = [
        Line2D([], [], color="#333", ls="", marker=m, label=text)
        for m, text in (
            ("o", "label fidelity"),
            ("^", "classifier trained on synthetic"),
            ("x", "machine reader (0.5: cannot tell)"),
        )
    ]
    right.legend(handles=measures, fontsize=7, loc="lower right")
    below.axis("off")
    below.legend(handles=handles, fontsize=7, loc="upper center", ncol=2, frameon=False)
    fig.suptitle("Generator fidelity against training budget (bench/fidelity.py)")
    save(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="train (or reuse) one generator and score it")
    go.add_argument("--minutes", type=float, required=True)
    go.add_argument("--preset", default="cpu")
    go.add_argument("--scheme", default="morphology")
    go.add_argument("--name", help="default bench-PRESET-Nm")
    go.add_argument("--n", type=int, default=1000, help="synthetic tiles (and real) scored")
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a config field (an ablation of the recipe)")  # fmt: skip
    go.add_argument("--skip", default="", help="measures to leave out (evaluate_generator)")
    go.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    go.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "histostudy-fidelity")  # fmt: skip
    show = sub.add_parser("table", help="print the recorded runs and draw the plot")
    show.add_argument("--plot", type=Path, default=ROOT / "docs" / "fidelity-budget.png")
    args = parser.parse_args()
    if args.command == "run":
        from generation.ldm.precision import flush_denormals

        flush_denormals()  # before torch starts its threads
        run(args)
        return
    records = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]
    print("\n".join(table(records)))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "histostudy.settings")
    import django

    django.setup()
    plot(records, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
