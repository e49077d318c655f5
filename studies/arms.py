"""A study with several arms (cohorts of other generators or prompt schemes, real tiles
shared): each arm as one modality of the MRMC analysis, the arms compared, and each arm's
equivalence verdict. Grouping only; the maths is histostudy.mrmc."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from histostudy import mrmc
from histostudy import statistics as st

if TYPE_CHECKING:  # a type only: studies.results imports this module
    from studies.results import Row


@dataclass
class ArmComparison:
    """A study with several arms: each arm's reader-averaged AUC and sensitivity (its synthetic
    tiles against every real tile, readers and cases random), the F test of equal arms and
    every pairwise difference with its interval, and each arm's equivalence verdict. The real
    tiles are read once and shared by the arms, so their ratings count in every arm."""

    arms: list[str]
    auc: mrmc.Analysis | None = None
    sensitivity: mrmc.Analysis | None = None
    # per arm; None where the arm's AUC has no variance to test (every reader perfect, say)
    equivalence: list[mrmc.Equivalence | None] = field(default_factory=list)
    readers: int = 0
    problem: str = ""
    left_out: list[str] = field(default_factory=list)

    @property
    def table(
        self,
    ) -> list[tuple[str, mrmc.Estimate, mrmc.Estimate | None, mrmc.Equivalence | None]]:
        """(arm, AUC, sensitivity, equivalence) per arm, for the dashboard."""
        if self.auc is None:
            return []
        sens = self.sensitivity.modalities if self.sensitivity else [None] * len(self.arms)
        return list(zip(self.arms, self.auc.modalities, sens, self.equivalence, strict=True))

    @property
    def sentence(self) -> str:
        if self.auc is None:
            return f"No comparison of the arms: {self.problem}"
        a = self.auc
        if a.f is None or not np.isfinite(a.f):
            return "The arms' AUCs do not vary between readers or cases: nothing to test."
        return (
            f"Arms compared by the readers' AUC ({self.readers} readers, readers and cases "
            f"random): F = {a.f:.2f} on {a.df1} and {a.df2:.1f} df, p = {a.p:.3f}."
        )

    def as_dict(self) -> dict:
        return {
            "arms": self.arms,
            "readers": self.readers,
            "auc": self.auc.as_dict() if self.auc else None,
            "sensitivity": self.sensitivity.as_dict() if self.sensitivity else None,
            "equivalence": [asdict(e) if e else None for e in self.equivalence],
            "problem": self.problem,
            "left_out": self.left_out,
        }


def designs(rows: list[Row], arms: Sequence[str] = ()) -> tuple[mrmc.Design, mrmc.Design]:
    """The answers as two MRMC designs (modalities x readers x cases, NaN where a reader did
    not read a case): the 10-level scores, and the calls (1 = synthetic). Without arms, one
    modality; with arms, one per arm, which reads its own synthetic tiles and every real one."""
    modalities = tuple(arms) or ("synthetic vs real",)
    readers = sorted({r.reader for r in rows})
    cases = sorted({r.case for r in rows})
    where_r = {name: j for j, name in enumerate(readers)}
    where_c = {case: k for k, case in enumerate(cases)}
    where_a = {arm: i for i, arm in enumerate(arms)}
    scores = np.full((len(modalities), len(readers), len(cases)), np.nan)
    calls = scores.copy()
    truth = np.zeros(len(cases), int)
    for r in rows:
        j, k = where_r[r.reader], where_c[r.case]
        positive = r.truth == st.POSITIVE
        truth[k] = int(positive)
        shown = [where_a[r.arm]] if positive and arms else list(range(len(modalities)))
        scores[shown, j, k] = st.ordinal_score(r.call, r.confidence)
        calls[shown, j, k] = float(r.call == st.POSITIVE)
    names = modalities, tuple(readers), tuple(map(str, cases))
    return mrmc.Design(scores, truth, *names), mrmc.Design(calls, truth, *names)


def compare_arms(rows: list[Row], arms: list[str], margin: float, alpha: float) -> ArmComparison:
    """The MRMC analysis with one modality per arm: an arm's ratings are those of its synthetic
    tiles and of every real tile. Readers with fewer than two real tiles, or two synthetic
    tiles of an arm, are left out (their AUC in that arm has no case variance)."""
    out = ArmComparison(list(arms))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts[r.reader][r.arm if r.truth == st.POSITIVE else ""] += 1
    out.left_out = sorted(
        reader for reader, n in counts.items() if min(n[a] for a in ["", *arms]) < 2
    )
    kept = [r for r in rows if r.reader not in out.left_out]
    out.readers = len({r.reader for r in kept})
    if out.readers < 2:
        out.problem = "fewer than two readers have answered two real tiles and two of each arm"
        return out
    scores, calls = designs(kept, arms)
    try:
        out.auc = mrmc.analyse(scores, "auc")
    except mrmc.MrmcError as exc:
        out.problem = str(exc)
        return out
    try:
        out.sensitivity = mrmc.analyse(calls, "sensitivity")
    except mrmc.MrmcError:
        out.sensitivity = None  # the AUC comparison stands without it
    for estimate in out.auc.modalities:
        try:
            out.equivalence.append(mrmc.equivalence(estimate, 0.5, margin, alpha))
        except mrmc.MrmcError:
            out.equivalence.append(None)
    return out
