"""A timed study's own statistics: accuracy at each exposure, each reader's psychometric curve
and threshold, the pooled threshold with its two-stage bootstrap interval, and HYPE's summary.
The arithmetic is studies.timed (pure); this module reads the study's scored answers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from django.core.cache import cache
from django.db.models import Count, Max, Sum

from histostudy import statistics as st
from studies import timed
from studies.models import Response, Study, Trial
from studies.models.timing import timing_flag

BOOTSTRAP_REPLICATES = 200
CACHE_SECONDS = 3600


@dataclass(frozen=True)
class ExposureRow:
    exposure: int
    right: int
    n: int
    accuracy: st.Proportion


@dataclass(frozen=True)
class ReaderCurve:
    reader: str
    trials: int
    fit: timed.Fit | None
    why_not: str  # why no curve could be fitted
    staircase: float | None  # the staircase's own threshold estimate (reversals)


@dataclass
class TimedResults:
    adaptive: bool
    exposures: list[ExposureRow] = field(default_factory=list)
    readers: list[ReaderCurve] = field(default_factory=list)
    pooled: timed.Threshold | None = None
    pooled_fit: timed.Fit | None = None
    pooled_why_not: str = ""
    hype_time: float | None = None  # ms: mean over readers of their staircase thresholds
    hype_readers: int = 0
    error_rate: st.Proportion | None = None  # HYPE's error rate, fixed exposure only
    flagged: list[tuple[str, int, str]] = field(default_factory=list)  # reader, position, why
    trials: int = 0

    def as_dict(self) -> dict:
        def proportion(p: st.Proportion | None) -> dict | None:
            return None if p is None else {"estimate": p.value, "low": p.low, "high": p.high}

        readers = []
        for r in self.readers:
            fit = r.fit
            readers.append({
                "reader": r.reader, "trials": r.trials, "why_not": r.why_not,
                "threshold_ms": fit and fit.threshold, "width": fit and fit.width,
                "measured": fit and fit.measured, "staircase_ms": r.staircase,
            })  # fmt: skip
        pooled = self.pooled
        return {
            "adaptive": self.adaptive,
            "trials": self.trials,
            "by_exposure": [
                {"exposure_ms": r.exposure, "right": r.right, "n": r.n} | proportion(r.accuracy)
                for r in self.exposures
            ],
            "readers": readers,
            "pooled_threshold_ms": pooled and asdict(pooled),
            "pooled_why_not": self.pooled_why_not,
            "hype_time_ms": self.hype_time,
            "hype_readers": self.hype_readers,
            "error_rate": proportion(self.error_rate),
            "flagged": [{"reader": r, "position": p, "why": w} for r, p, w in self.flagged],
        }


def timed_results(study: Study, method: str = "wilson") -> TimedResults | None:
    """None for a study that is not timed. Practice trials are left out; every scored answer
    counts at the exposure asked (a flagged trial is listed, not dropped: the plan is fixed
    before reading, and the list lets an analyst rerun without them)."""
    if not study.timed:
        return None
    # the bootstrap refits the curve hundreds of times: kept until an answer, a report of a
    # displayed duration or a request for a tile changes what it was computed from
    state = Trial.objects.filter(assignment__study=study).aggregate(
        answers=Count("response"), last=Max("response__id"), shown=Count("displayed_ms"),
        fetched=Sum("image_requests"),
    )  # fmt: skip
    opened = study.opened_at.isoformat() if study.opened_at else ""
    key = f"timed-results:{study.pk}:{opened}:{study.seed}:{method}:" + ":".join(
        str(state[k]) for k in sorted(state)
    )
    cached = cache.get(key)
    if cached is None:
        cached = _compute(study, method)
        cache.set(key, cached, CACHE_SECONDS)
    return cached


def _compute(study: Study, method: str) -> TimedResults:
    out = TimedResults(adaptive=study.adaptive)
    answers = _answers(study, out.flagged)
    every = [a for mine in answers.values() for a in mine]
    out.trials = len(every)
    out.exposures = [
        ExposureRow(r.exposure, r.right, r.n, st.proportion(r.right, r.n, method))
        for r in timed.by_exposure(every)
    ]
    start = study.staircase_start_ms if out.adaptive else None
    out.readers = [_reader_curve(reader, mine, start) for reader, mine in answers.items()]
    if answers:
        try:
            out.pooled = timed.pooled_threshold(
                answers, BOOTSTRAP_REPLICATES, seed=study.seed % (1 << 32)
            )
            out.pooled_fit = timed.fit([e for e, _ in every], [ok for _, ok in every])
        except timed.FitError as exc:
            out.pooled_why_not = str(exc)
    if out.adaptive:
        found = [r.staircase for r in out.readers if r.staircase is not None]
        out.hype_readers = len(found)
        out.hype_time = float(sum(found) / len(found)) if found else None
    elif every:
        out.error_rate = st.proportion(sum(not ok for _, ok in every), len(every), method)
    return out


def _answers(
    study: Study, flagged: list[tuple[str, int, str]]
) -> dict[str, list[tuple[int, bool]]]:
    """Each reader's scored (exposure asked, right) in order; the trials not shown as asked
    are added to `flagged`."""
    rows = (
        Response.objects.filter(case__study=study, trial__practice=False)
        .exclude(trial__exposure_ms=None)
        .order_by("reader__username", "trial__position")
        .values_list(
            "reader__username", "trial__position", "trial__exposure_ms", "call", "case__kind",
            "trial__displayed_ms", "trial__frame_ms", "trial__image_requests",
        )
    )  # fmt: skip
    answers: dict[str, list[tuple[int, bool]]] = {}
    for reader, position, asked, call, kind, shown, frame, fetched in rows:
        answers.setdefault(reader, []).append((asked, call == kind))
        why = timing_flag(asked, shown, frame, fetched)
        if why:
            flagged.append((reader, position, why))
    return answers


def _reader_curve(reader: str, mine: list[tuple[int, bool]], start: int | None) -> ReaderCurve:
    """The reader's fit and, on a staircase starting at `start`, its own estimate (the last
    answer's step included: it may be a reversal)."""
    try:
        fit, why_not = timed.fit([e for e, _ in mine], [ok for _, ok in mine]), ""
    except timed.FitError as exc:
        fit, why_not = None, str(exc)
    staircase = None
    if start is not None:
        after = timed.next_exposure(mine, start=start, strict=False)
        staircase = timed.staircase_threshold([*(e for e, _ in mine), after])
    return ReaderCurve(reader, len(mine), fit, why_not, staircase)


def curve_points(fit: timed.Fit, low: float, high: float, n: int = 60) -> list[tuple[float, float]]:
    """(exposure, p) along a fitted curve, evenly on the log scale, for the plot."""
    step = (math.log(high) - math.log(low)) / (n - 1)
    xs = [math.exp(math.log(low) + i * step) for i in range(n)]
    return [(x, float(timed.curve(x, fit.threshold, fit.width, fit.lapse))) for x in xs]
