"""manage.py mrmc --csv FILE: see histostudy.mrmc."""

from __future__ import annotations

import json
import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from histostudy.mrmc import COVARIANCES, METRICS, Analysis, MrmcError, analyse, read_csv


class Command(BaseCommand):
    help = (
        "Multi-reader multi-case analysis of any reader-study CSV (columns reader, modality, "
        "case, truth, rating; truth 1 = positive): Obuchowski-Rockette with Hillis degrees of "
        "freedom, random readers and random cases. Per modality the reader-averaged figure of "
        "merit with its interval; with several, the F test of equal modalities and every "
        "difference with its interval; the variance components."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", type=Path, required=True, help="the readings, one a row")
        parser.add_argument(
            "--metric", choices=METRICS, default="auc",
            help="auc from ratings, or sensitivity/specificity/accuracy from 0/1 calls",
        )  # fmt: skip
        parser.add_argument("--cov", choices=COVARIANCES, default="jackknife",
                            help="how the case-sampling covariances are estimated")  # fmt: skip
        parser.add_argument("--confidence", type=float, default=0.95)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: object, **options: object) -> None:
        try:
            design = read_csv(options["csv"])  # type: ignore[arg-type]
            result = analyse(design, str(options["metric"]), str(options["cov"]),
                             float(options["confidence"]))  # type: ignore[arg-type]  # fmt: skip
        except MrmcError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(as_json(result), allow_nan=False, default=str))
            return
        positives = int(design.truth.sum())
        self.stdout.write("\n".join(lines(result, len(design.cases), positives)))


def as_json(result: Analysis) -> dict:
    """as_dict with each modality's estimate also under the metric's name (`auc`)."""
    data = result.as_dict()
    for modality in data["modalities"]:
        modality[result.metric] = modality["estimate"]
    return _finite(data)


def _finite(value: object) -> object:
    """Infinite degrees of freedom (no reader variance) and the nan of a figure without
    variance as null: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def lines(result: Analysis, cases: int, positives: int) -> list[str]:
    level = f"{result.confidence:.0%}"
    out = [
        f"MRMC analysis of {result.metric} (Obuchowski-Rockette, Hillis df, random readers and "
        f"cases; {result.covariance} covariances): {len(result.readers)} readers, {cases} cases "
        f"({positives} positive)",
        f"{'modality':<16} {result.metric:>11} {'SE':>8} {'df':>7}  {level} CI",
    ]
    for m in result.modalities:
        out.append(f"{m.name:<16} {m.estimate:11.4f} {m.se:8.4f} {m.df:7.2f}  "
                   f"{m.ci_low:.4f} to {m.ci_high:.4f}")  # fmt: skip
    if result.f is not None:
        out.append(f"equal modalities: F({result.df1}, {result.df2:.2f}) = {result.f:.2f}, "
                   f"p = {result.p:.4f}")  # fmt: skip
        for d in result.differences:
            out.append(f"{d.name}: {d.estimate:+.4f} (SE {d.se:.4f}, {level} CI {d.ci_low:+.4f} "
                       f"to {d.ci_high:+.4f}, t = {d.t:.2f}, p = {d.p:.4f})")  # fmt: skip
    c = result.components
    named = [("var_R", c.var_r), ("var_TR", c.var_tr), ("Cov1", c.cov1), ("Cov2", c.cov2),
             ("Cov3", c.cov3), ("Var", c.var_e)]  # fmt: skip
    out.append("variance components: " + ", ".join(f"{n} {v:.8f}" for n, v in named
                                                    if v is not None))  # fmt: skip
    return out
