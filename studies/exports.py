"""Export rows: every response in plain columns, and iMRMC's list-mode input file."""

from __future__ import annotations

from collections.abc import Iterator

from generation.models import Cohort
from histostudy import statistics as st
from studies.models import Response, Study

# new columns go at the end, so that scripts reading by position keep working
RESPONSE_COLUMNS = [
    "study", "reader", "position", "practice", "case", "tile_sha256", "truth", "label",
    "generator", "scheme", "prompt", "call", "confidence", "score", "served_at", "answered_at",
    "seconds", "first_served_at", "serve_count", "seconds_since_first_shown", "seconds_on_screen",
    "arm", "design", "exposure_ms", "displayed_ms", "frame_ms", "image_requests", "timing_flag",
    "pair", "partner_tile_sha256", "synthetic_side",
]  # fmt: skip


def response_rows(study: Study) -> Iterator[list]:
    """Header, then one row per response (practice included, flagged), in answer order. A
    synthetic tile's arm is the cohort it came with; a real tile serves every arm (blank). A
    paired trial's row is its synthetic tile's, with the pair's real tile and sides at the
    end."""
    yield RESPONSE_COLUMNS
    responses = (
        Response.objects.filter(case__study=study)
        .select_related(
            "reader",
            "case__tile",
            "case__member__cohort__generator",
            "trial__pair__real__tile",
        )
        .order_by("reader__username", "trial__position")
    )
    # each row's cohort without its plan; the prompts are read once per cohort
    responses = responses.defer("case__member__cohort__plan")
    prompts = {c.pk: c.prompts for c in study.arm_cohorts()}
    for r in responses.iterator(chunk_size=2000):
        synthetic = r.case.kind == st.POSITIVE
        cohort = r.case.member.cohort
        if cohort.pk not in prompts:  # not an arm any more: read its plan once
            prompts[cohort.pk] = Cohort.objects.get(pk=cohort.pk).prompts
        first = r.trial.first_served_at or r.served_at  # answers stored before it was kept
        yield [
            study.name, r.reader.get_username(), r.trial.position, int(r.trial.practice),
            r.case_id, r.case.tile.sha256, r.case.kind, r.case.label,
            cohort.generator.name if synthetic else "",
            cohort.generator.scheme if synthetic else "",
            prompts[cohort.pk][r.case.member.position], r.call,
            "" if r.confidence is None else r.confidence,
            _score(r), r.served_at.isoformat(),
            r.answered_at.isoformat(), f"{r.seconds:.3f}", first.isoformat(),
            r.trial.serve_count, f"{(r.answered_at - first).total_seconds():.3f}",
            "" if r.on_screen_seconds is None else f"{r.on_screen_seconds:.3f}",
            cohort.name if synthetic else "", study.trial_design,
            *_blank_none(r.trial.exposure_ms, r.trial.displayed_ms, r.trial.frame_ms,
                         None if r.trial.exposure_ms is None else r.trial.image_requests),
            r.trial.timing_flag, *_pair_columns(r.trial),
        ]  # fmt: skip


def _score(r: Response) -> int | str:
    """The 10-level score of the row's tile (higher: surer it is synthetic). A paired row's
    tile is the pair's synthetic one: picking it is calling it synthetic, picking the other
    calling it real."""
    call = r.call
    if r.trial.pair_id is not None:
        call = st.POSITIVE if r.call == r.truth else st.NEGATIVE
    return st.ordinal_score(call, r.confidence)


def _pair_columns(trial) -> list:
    """A paired trial's pair, its real tile (the row's tile is the synthetic one) and the
    synthetic tile's side (the call is the side the reader took for synthetic)."""
    if trial.pair_id is None:
        return ["", "", ""]
    return [trial.pair_id, trial.pair.real.tile.sha256, trial.synthetic_side]


def _blank_none(*values: object) -> list:
    return ["" if v is None else (f"{v:.1f}" if isinstance(v, float) else v) for v in values]


def imrmc_lines(study: Study) -> Iterator[str]:
    """iMRMC list mode: a free-text header, BEGIN DATA:, truth rows (-1, case, 0, 0|1), then
    (reader, case, modality, score) with the 10-level score; positive = synthetic.

    One modality per arm, named after its cohort: a study with one arm has one modality (the
    study's name); with several, each arm's synthetic tiles are read in its own modality and
    every real tile's score is listed under every arm (the real tiles are shared), so that
    iMRMC's multi-modality analysis sees the same design as the dashboard.

    iMRMC looks for its keys (NR:, N0:, N1:, NM:) anywhere in a header line, so the title
    line holds no colon: a study named e.g. pilot-run1 followed by one would read as N1."""
    arms = [cohort.name for cohort in study.arm_cohorts()]
    scored = Response.objects.filter(case__study=study, trial__practice=False)
    rows = list(
        scored.order_by("reader__username", "case_id").values_list(
            "reader__username", "case_id", "case__kind", "call", "confidence",
            "case__member__cohort__name",
        )
    )  # fmt: skip
    truth = {case: kind == st.POSITIVE for _, case, kind, _, _, _ in rows}
    readers = sorted({r[0] for r in rows})
    yield f"HistoStudy reader study {study.name} (score 1-10, higher = more sure synthetic)"
    yield f"NR: {len(readers)}"
    yield f"N0: {sum(not t for t in truth.values())}"
    yield f"N1: {sum(truth.values())}"
    yield f"NM: {len(arms)}"
    yield "BEGIN DATA:"
    for case in sorted(truth):
        yield f"-1,{case},0,{int(truth[case])}"
    for reader, case, kind, call, confidence, arm in rows:
        score = st.ordinal_score(call, confidence)
        if len(arms) == 1:
            yield f"{reader},{case},{study.name},{score}"
            continue
        for modality in [arm] if kind == st.POSITIVE else arms:
            yield f"{reader},{case},{modality},{score}"
