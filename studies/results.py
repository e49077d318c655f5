"""A study's results: its scored responses fetched once, grouped, and handed to statistics.py.

Practice trials never count. Everything here is a query plus grouping; the maths lives in
histostudy/statistics.py.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from histostudy import mrmc
from histostudy import statistics as st
from studies.arms import ArmComparison, compare_arms, designs
from studies.models import Response, Study

BLOCKS = 4  # the session split into quarters, to see a learning effect


@dataclass(frozen=True)
class Row:
    """One scored answer, flattened."""

    reader: str
    case: int
    truth: str
    label: int
    generator: str
    scheme: str
    call: str
    confidence: int | None
    seconds: float
    position: int  # among the reader's scored trials, 0-based
    n_trials: int
    arm: str = ""  # synthetic tiles: the cohort (arm) they came with; real tiles serve every arm


@dataclass
class ReaderResult:
    reader: str
    summary: st.ReaderSummary
    roc: list[tuple[float, float]]


@dataclass
class Pooled:
    """Sensitivity, specificity and accuracy of a group of answers: the reader averages with
    MRMC intervals (readers and cases random) where the group allows an analysis, and the
    pooled counts with intervals that treat every answer as independent (too narrow: they
    ignore that the same readers and cases recur)."""

    n: int
    sensitivity: st.Proportion
    specificity: st.Proportion
    accuracy: st.Proportion
    mrmc: dict[str, mrmc.Estimate] = field(default_factory=dict)
    problem: str = ""  # why there is no MRMC analysis of the group

    def shown(self, name: str) -> st.Proportion | mrmc.Estimate:
        """The MRMC estimate where there is one, else the pooled proportion."""
        return self.mrmc.get(name) or getattr(self, name)

    @property
    def shown_sensitivity(self) -> st.Proportion | mrmc.Estimate:
        return self.shown("sensitivity")

    @property
    def shown_specificity(self) -> st.Proportion | mrmc.Estimate:
        return self.shown("specificity")

    @property
    def shown_accuracy(self) -> st.Proportion | mrmc.Estimate:
        return self.shown("accuracy")


@dataclass
class Inference:
    """What the study says about readers and synthetic tiles in general: readers and cases
    both random (histostudy.mrmc, Obuchowski-Rockette with Hillis df, jackknife), positive =
    synthetic, and the equivalence verdict planned before the study opened."""

    readers: int = 0
    cases: int = 0
    auc: mrmc.Estimate | None = None  # from the call x confidence score (1-10)
    sensitivity: mrmc.Estimate | None = None
    specificity: mrmc.Estimate | None = None
    equivalence: mrmc.Equivalence | None = None
    components: mrmc.Components | None = None
    problem: str = ""  # why there is no analysis yet
    left_out: list[str] = field(default_factory=list)  # readers with too few tiles of a kind

    @property
    def rows(self) -> list[tuple[str, mrmc.Estimate]]:
        """(name, estimate) for the dashboard's table: AUC, sensitivity, specificity."""
        named = (("AUC (call x confidence)", self.auc), ("sensitivity", self.sensitivity),
                 ("specificity", self.specificity))  # fmt: skip
        return [(name, e) for name, e in named if e is not None]

    @property
    def sentence(self) -> str:
        if self.auc is None or self.equivalence is None:
            return f"No study-level analysis: {self.problem}"
        a, e = self.auc, self.equivalence
        verdict = "yes" if e.equivalent else "no"
        left = (
            f" Left out, with fewer than two tiles of a kind answered: {', '.join(self.left_out)}."
            if self.left_out else ""
        )  # fmt: skip
        return (
            f"Readers' AUC for telling synthetic from real {a.estimate:.2f} (95% CI "
            f"{a.ci_low:.2f}-{a.ci_high:.2f}, readers and cases random: {self.readers} readers, "
            f"{self.cases} cases). Indistinguishable within {e.margin:.2f} of chance: {verdict} "
            f"(two one-sided tests, p = {e.p:.3f}; {1 - 2 * e.alpha:.0%} CI "
            f"{e.ci_low:.2f}-{e.ci_high:.2f})." + left
        )

    def as_dict(self) -> dict:
        return {
            "readers": self.readers,
            "cases": self.cases,
            "method": "Obuchowski-Rockette, Hillis df, jackknife covariances",
            **{k: asdict(v) if v is not None else None
               for k, v in (("auc", self.auc), ("sensitivity", self.sensitivity),
                            ("specificity", self.specificity),
                            ("equivalence", self.equivalence),
                            ("components", self.components))},
            "left_out": self.left_out,
            "sentence": self.sentence,
        }  # fmt: skip


def inference(rows: list[Row], margin: float, alpha: float) -> Inference:
    """The MRMC analysis of a study's scored answers; a study too small for one (fewer than two
    readers, a reader without both kinds of tile) says why instead."""
    if not rows:
        return Inference(problem="no scored answers yet")
    kept, left_out = usable(rows)
    if not kept:
        return Inference(problem="no reader has answered two real and two synthetic tiles yet",
                         left_out=left_out)  # fmt: skip
    scores, calls = designs(kept)
    n = len(scores.readers), len(scores.cases)
    try:
        auc = mrmc.analyse(scores, "auc")
        sensitivity = mrmc.analyse(calls, "sensitivity").modalities[0]
        specificity = mrmc.analyse(calls, "specificity").modalities[0]
        verdict = mrmc.equivalence(auc.modalities[0], 0.5, margin, alpha)
    except mrmc.MrmcError as exc:
        return Inference(*n, problem=str(exc), left_out=left_out)
    return Inference(*n, auc.modalities[0], sensitivity, specificity, verdict, auc.components,
                     left_out=left_out)  # fmt: skip


def usable(rows: list[Row]) -> tuple[list[Row], list[str]]:
    """The answers of readers with two real and two synthetic tiles answered at least (an
    MRMC analysis needs the case variance of each reader), and the names of the others."""
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        kinds[r.reader][r.truth == st.POSITIVE] += 1
    short = sorted(name for name, (real, synthetic) in kinds.items() if min(real, synthetic) < 2)
    return [r for r in rows if r.reader not in short], short


@dataclass
class StudyResults:
    study: Study
    method: str
    rows: list[Row]
    readers: list[ReaderResult]
    headline: dict[str, st.Headline]
    fleiss_kappa: float | None
    fleiss_cases: int
    cohen_kappas: dict[tuple[str, str], float]
    fool_rates: dict[int, float]
    breakdowns: dict[str, dict[str, Pooled]] = field(default_factory=dict)
    inference: Inference = field(default_factory=Inference)
    learning: st.Trend | None = None  # accuracy from the first to the last trial
    arms: ArmComparison | None = None  # a study with several arms

    @property
    def cohen_summary(self) -> st.Headline:
        return st.headline(list(self.cohen_kappas.values()))

    @property
    def sentence(self) -> str:
        """The paper's headline: median sensitivity/specificity across readers, with n."""
        sens, spec = self.headline["sensitivity"], self.headline["specificity"]
        if sens.n == 0:
            return "No scored answers yet."
        return (
            f"{len(self.readers)} readers, {len(self.rows)} scored answers: median sensitivity "
            f"{sens.median:.2f} (range {sens.low:.2f}-{sens.high:.2f}) and median specificity "
            f"{spec.median:.2f} (range {spec.low:.2f}-{spec.high:.2f}) for telling synthetic "
            f"tiles from real ones; 0.50 is chance."
        )

    def as_dict(self) -> dict:
        return {
            "study": self.study.name,
            "interval": self.method,
            "positive": st.POSITIVE,
            "n_answers": len(self.rows),
            "headline": {k: vars(v) for k, v in self.headline.items()},
            "sentence": self.sentence,
            "mrmc": self.inference.as_dict(),
            "arms": self.arms.as_dict() if self.arms else None,
            "learning_trend": asdict(self.learning) if self.learning else None,
            "readers": [{"reader": r.reader, **r.summary.as_dict()} for r in self.readers],
            "agreement": {
                "fleiss_kappa": self.fleiss_kappa,
                "fleiss_cases": self.fleiss_cases,
                "cohen_kappa": [
                    {"readers": list(pair), "kappa": k} for pair, k in self.cohen_kappas.items()
                ],
            },
            "fool_rates": {str(k): v for k, v in self.fool_rates.items()},
            "breakdowns": {
                name: {
                    group: {
                        "n": p.n,
                        "sensitivity": p.sensitivity.as_dict(),
                        "specificity": p.specificity.as_dict(),
                        "accuracy": p.accuracy.as_dict(),
                        "mrmc": {k: asdict(v) for k, v in p.mrmc.items()},
                        "mrmc_problem": p.problem,
                    }
                    for group, p in groups.items()
                }
                for name, groups in self.breakdowns.items()
            },
        }


def fetch_rows(study: Study) -> list[Row]:
    """Every scored answer of the study in one query, ordered by reader and position. A row's
    seconds are the time on screen summed over servings where the page measured it, else the
    time from the last serving to the answer."""
    values = (
        Response.objects.filter(case__study=study, trial__practice=False)
        .order_by("reader__username", "trial__position")
        .values_list(
            "reader__username", "case_id", "case__kind", "case__label",
            "case__tile__cohort__generator__name", "case__tile__cohort__generator__scheme",
            "call", "confidence", "served_at", "answered_at", "trial__position",
            "trial__assignment__n_trials", "case__member__cohort__name", "on_screen_seconds",
        )
    )  # fmt: skip
    practice = study.practice_trials
    rows = []
    for (reader, case, kind, label, gen, scheme, call, conf, served, answered, pos, n, arm,
         shown) in values:  # fmt: skip
        seconds = shown if shown is not None else (answered - served).total_seconds()
        rows.append(
            Row(
                reader, case, kind, label, gen or "real", scheme or "real", call, conf, seconds,
                pos - practice, n - practice, arm if kind == st.POSITIVE else "",
            )
        )  # fmt: skip
    return rows


def pooled(rows: list[Row], method: str) -> Pooled:
    c = st.confusion([r.truth for r in rows], [r.call for r in rows])
    group = Pooled(
        c.n,
        st.proportion(c.tp, c.tp + c.fn, method),
        st.proportion(c.tn, c.tn + c.fp, method),
        st.proportion(c.tp + c.tn, c.n, method),
    )
    kept, _ = usable(rows)
    if not kept:
        group.problem = "no reader answered two tiles of each kind here"
        return group
    calls = designs(kept)[1]
    problems = []
    for name in ("sensitivity", "specificity", "accuracy"):
        try:
            estimate = mrmc.analyse(calls, name).modalities[0]
        except mrmc.MrmcError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if np.isfinite(estimate.se):  # no variance is no interval: the pooled one stands
            group.mrmc[name] = estimate
    group.problem = "; ".join(problems)
    return group


def _agreement(rows: list[Row]) -> tuple[float | None, int, dict[tuple[str, str], float]]:
    """Fleiss' kappa over cases every reader answered; Cohen's kappa per pair of readers."""
    by_case: dict[int, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_case[r.case][r.reader] = r.call
    readers = sorted({r.reader for r in rows})
    complete = [calls for calls in by_case.values() if len(calls) == len(readers)]
    fleiss = None
    if len(readers) >= 2 and complete:
        table = np.array([[sum(c == k for c in calls.values()) for k in ("real", "synthetic")]
                          for calls in complete])  # fmt: skip
        fleiss = st.fleiss_kappa(table)
    cohen = {}
    for a, b in itertools.combinations(readers, 2):
        common = [calls for calls in by_case.values() if a in calls and b in calls]
        if common:
            cohen[(a, b)] = st.cohen_kappa([c[a] for c in common], [c[b] for c in common])
    return fleiss, len(complete), cohen


def study_results(study: Study, method: str = "wilson") -> StudyResults:
    rows = fetch_rows(study)
    by_reader: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_reader[r.reader].append(r)
    readers = []
    for name, mine in by_reader.items():
        truth, calls = [r.truth for r in mine], [r.call for r in mine]
        confidences = [r.confidence for r in mine]
        summary = st.summarise_reader(truth, calls, confidences, [r.seconds for r in mine], method)
        scores = np.array([st.ordinal_score(c, k) for c, k in zip(calls, confidences, strict=True)])
        positive = np.array(truth) == st.POSITIVE
        readers.append(
            ReaderResult(name, summary, st.roc_points(scores[positive], scores[~positive]))
        )
    headline = {
        "sensitivity": st.headline([r.summary.sensitivity.value for r in readers]),
        "specificity": st.headline([r.summary.specificity.value for r in readers]),
        "accuracy": st.headline([r.summary.accuracy.value for r in readers]),
        "auc": st.headline([r.summary.auc.value for r in readers]),
    }
    fleiss, fleiss_cases, cohen = _agreement(rows)
    results = StudyResults(
        study, method, rows, readers, headline, fleiss, fleiss_cases, cohen,
        st.fool_rates([r.case for r in rows], [r.truth for r in rows], [r.call for r in rows]),
    )  # fmt: skip
    arms = [cohort.name for cohort in study.arm_cohorts()]
    results.breakdowns = breakdowns(rows, method, arms)
    results.inference = inference(rows, study.equivalence_margin, study.equivalence_alpha)
    if len(arms) > 1:
        results.arms = compare_arms(rows, arms, study.equivalence_margin, study.equivalence_alpha)
    results.learning = st.learning_trend([
        ([r.position / max(r.n_trials - 1, 1) for r in mine], [r.call == r.truth for r in mine])
        for mine in by_reader.values()
    ])  # fmt: skip
    return results


def _block(row: Row) -> int:
    return min(BLOCKS - 1, row.position * BLOCKS // max(row.n_trials, 1))


def breakdowns(
    rows: list[Row], method: str, arms: list[str] | None = None
) -> dict[str, dict[str, Pooled]]:
    """Pooled answers by tissue label, by arm (several only), by generator and prompt scheme
    (synthetic against all real tiles), and by quarter of the reading session."""
    out: dict[str, dict[str, Pooled]] = {}
    out["label"] = {
        name: pooled([r for r in rows if r.label == value], method)
        for value, name in ((0, "healthy"), (1, "tumour"))
    }
    real = [r for r in rows if r.truth != st.POSITIVE]
    if arms and len(arms) > 1:
        out["arm"] = {a: pooled([r for r in rows if r.arm == a] + real, method) for a in arms}
    for key in ("generator", "scheme"):
        groups = sorted({getattr(r, key) for r in rows if r.truth == st.POSITIVE})
        out[key] = {
            g: pooled([r for r in rows if getattr(r, key) == g] + real, method) for g in groups
        }
    out["block"] = {
        f"quarter {block + 1}": pooled([r for r in rows if _block(r) == block], method)
        for block in range(BLOCKS)
    }
    return out
