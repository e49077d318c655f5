"""A paired (2AFC) study's own statistics: per reader the share of pairs where they picked the
synthetic tile (95% interval, Wilson unless the dashboard asks for exact ones) and the share of
left answers (a side bias, which 2AFC accuracy is free of); the reader average with its MRMC
interval (readers and pairs random); the equivalence verdict around 0.5; accuracy by label and
by how the pair was matched. The arithmetic is studies.paired (pure); this module reads the
study's scored answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from histostudy import statistics as st
from studies import paired
from studies.models import Response, Study


@dataclass(frozen=True)
class PairedReader:
    reader: str
    accuracy: st.Proportion  # picked the synthetic tile
    left: st.Proportion  # answered "left"


@dataclass
class PairedStudy:
    analysis: paired.PairedResults
    readers: list[PairedReader] = field(default_factory=list)
    by_label: dict[str, st.Proportion] = field(default_factory=dict)
    by_match: dict[str, st.Proportion] = field(default_factory=dict)
    answers: int = 0
    margin: float = 0.1

    @property
    def sentence(self) -> str:
        if not self.answers:
            return "No scored answers yet."
        right = sum(r.accuracy.k for r in self.readers)
        out = (
            f"Readers picked the synthetic tile in {right} of {self.answers} answers "
            f"({len(self.readers)} readers, each reading every pair; chance: half)."
        )
        a, eq = self.analysis.average, self.analysis.equivalence
        if a is None:
            return f"{out} No reader average yet: {self.analysis.problem}."
        verdict = "indistinguishable" if eq and eq.equivalent else "not shown indistinguishable"
        p = f", TOST p = {eq.p:.3g}" if eq else ""
        interval = f"95% CI {a.ci_low:.3f}-{a.ci_high:.3f}, readers and pairs random"
        return (f"{out} Reader average {a.estimate:.3f} ({interval}): {verdict} within "
                f"0.5 +- {self.margin:g}{p}.")  # fmt: skip

    def as_dict(self) -> dict:
        a, eq = self.analysis.average, self.analysis.equivalence
        return {
            "answers": self.answers,
            "readers": [
                {"reader": r.reader, "accuracy": r.accuracy.as_dict(), "left": r.left.as_dict()}
                for r in self.readers
            ],
            "reader_average": a and asdict(a),
            "equivalence": eq and asdict(eq),
            "problem": self.analysis.problem,
            "by_label": {k: v.as_dict() for k, v in self.by_label.items()},
            "by_match": {k: v.as_dict() for k, v in self.by_match.items()},
        }


def paired_results(study: Study, method: str = "wilson") -> PairedStudy | None:
    """None for a study that is not paired. Practice trials are left out."""
    if not study.paired:
        return None
    rows = list(
        Response.objects.filter(case__study=study, trial__practice=False)
        .order_by("reader__username", "trial__position")
        .values_list(
            "reader__username",
            "trial__pair_id",
            "call",
            "trial__synthetic_side",
            "trial__pair__label",
            "trial__pair__matched_on",
        )
    )
    answers = [(reader, pair, call == side) for reader, pair, call, side, _, _ in rows]
    out = PairedStudy(
        paired.analyse_pairs(answers, study.equivalence_margin, study.equivalence_alpha),
        answers=len(rows),
        margin=study.equivalence_margin,
    )
    by_reader: dict[str, list[tuple[bool, bool]]] = {}
    groups: dict[tuple[str, str], list[bool]] = {}
    for reader, _, call, side, label, matched in rows:
        by_reader.setdefault(reader, []).append((call == side, call == "left"))
        groups.setdefault(("label", ("healthy", "tumour")[label]), []).append(call == side)
        groups.setdefault(("match", matched), []).append(call == side)
    for reader, mine in by_reader.items():
        right, left = sum(r for r, _ in mine), sum(left for _, left in mine)
        out.readers.append(PairedReader(reader, st.proportion(right, len(mine), method),
                                        st.proportion(left, len(mine), method)))  # fmt: skip
    for (kind, name), mine in sorted(groups.items()):
        target = out.by_label if kind == "label" else out.by_match
        target[name] = st.proportion(sum(mine), len(mine), method)
    return out
