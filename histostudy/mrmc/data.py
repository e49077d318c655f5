"""What an MRMC analysis reads: the design (ratings per modality x reader x case, truth per
case), from rows or from a reader-study CSV, and the error every check raises."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = ("auc", "sensitivity", "specificity", "accuracy")
COVARIANCES = ("jackknife", "delong", "unbiased")


class MrmcError(ValueError):
    """The data cannot be analysed as asked; the message says what is missing or wrong."""


@dataclass(frozen=True)
class Design:
    """Ratings (modalities, readers, cases), NaN where a reading is missing; truth (cases,)."""

    ratings: np.ndarray
    truth: np.ndarray
    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str, str, int, float]]) -> Design:
        """From (reader, modality, case, truth, rating) rows, one per reading, in any order.
        Readers, modalities and cases keep the order in which they first appear."""
        readers = list(dict.fromkeys(r[0] for r in rows))
        modalities = list(dict.fromkeys(r[1] for r in rows))
        cases = list(dict.fromkeys(r[2] for r in rows))
        index_r = {n: i for i, n in enumerate(readers)}
        index_m = {n: i for i, n in enumerate(modalities)}
        index_c = {n: i for i, n in enumerate(cases)}
        ratings = np.full((len(modalities), len(readers), len(cases)), np.nan)
        truth = np.full(len(cases), -1)
        for reader, modality, case, positive, rating in rows:
            k = index_c[case]
            if truth[k] not in (-1, positive):
                raise MrmcError(f"case {case!r} has truth {truth[k]} and {positive}")
            truth[k] = positive
            cell = (index_m[modality], index_r[reader], k)
            if not np.isnan(ratings[cell]):
                raise MrmcError(f"reader {reader!r} rated case {case!r} twice in {modality!r}")
            ratings[cell] = rating
        return cls(ratings, truth, tuple(modalities), tuple(readers), tuple(cases))

    def __post_init__(self) -> None:
        t, r, c = self.ratings.shape
        if (t, r, c) != (len(self.modalities), len(self.readers), len(self.cases)):
            raise MrmcError("ratings must be (modalities, readers, cases)")
        if self.truth.shape != (c,) or not np.isin(self.truth, (0, 1)).all():
            raise MrmcError("truth must hold 0 or 1 for every case")


COLUMNS = ("reader", "modality", "case", "truth", "rating")


def read_csv(path: Path) -> Design:
    """A reader-study CSV with columns reader, modality, case, truth (1 = positive, 0 =
    negative) and rating, one row a reading; a blank rating is a reading left out. Every
    problem is an MrmcError naming the file, the row (1 = the header) and the column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            twice = sorted({name for name in header if header.count(name) > 1 and name})
            if twice:
                raise MrmcError(f"{path}: row 1: column(s) {', '.join(twice)} appear twice")
            reader.fieldnames = header
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise MrmcError(
                    f"{path}: row 1: missing column(s) {', '.join(missing)}; expected a header "
                    f"with {', '.join(COLUMNS)}"
                )
            parsed = [_parse_row(path, number, row) for number, row in enumerate(reader, 2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MrmcError(f"{path}: cannot be read as CSV: {exc}") from exc
    if not parsed:
        raise MrmcError(f"{path}: no readings below the header")
    truth: dict[str, tuple[int, int]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    rated: dict[str, int] = {}
    for number, (reader_id, modality, case, positive, rating) in parsed:
        first = truth.setdefault(case, (positive, number))
        if first[0] != positive:
            raise MrmcError(
                f"{path}: row {number}, column truth: case {case!r} has truth {positive} here "
                f"but {first[0]} in row {first[1]}"
            )
        key = (reader_id, modality, case)
        if key in seen:
            raise MrmcError(
                f"{path}: row {number}: reader {reader_id!r} read case {case!r} in modality "
                f"{modality!r} already in row {seen[key]}"
            )
        seen[key] = number
        rated[reader_id] = rated.get(reader_id, 0) + (not math.isnan(rating))
    idle = [r for r, n in rated.items() if n == 0]
    if idle:
        raise MrmcError(
            f"{path}: column rating: reader(s) {', '.join(map(repr, idle))} read nothing "
            "(every rating blank)"
        )
    return Design.from_rows([row for _, row in parsed])


def _parse_row(path: Path, number: int, row: dict) -> tuple[int, tuple[str, str, str, int, float]]:
    where = f"{path}: row {number}"
    names = []
    for column in ("reader", "modality", "case"):
        value = (row.get(column) or "").strip()
        if not value:
            raise MrmcError(f"{where}, column {column}: empty; expected a name or number")
        names.append(value)
    truth = (row.get("truth") or "").strip()
    if truth not in ("0", "1"):
        raise MrmcError(f"{where}, column truth: expected 0 or 1, got {truth!r}")
    text = (row.get("rating") or "").strip()
    try:
        rating = float(text) if text else math.nan
    except ValueError:
        raise MrmcError(f"{where}, column rating: expected a number, got {text!r}") from None
    if text and not math.isfinite(rating):
        raise MrmcError(f"{where}, column rating: expected a finite number, got {text!r}")
    return number, (names[0], names[1], names[2], int(truth), rating)
