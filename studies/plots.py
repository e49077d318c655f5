"""Study plots as small hand-written inline SVG: readers in ROC space, per-reader intervals,
fool rates; for timed studies the psychometric curve and the threshold per reader.
No JavaScript and no plotting library on the request path: matplotlib took
most of a second per dashboard, these take milliseconds. Text is escaped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import numpy as np

from studies import timed
from studies.paired_results import PairedStudy
from studies.results import StudyResults
from studies.timed_results import TimedResults, curve_points

INK, MUTED, SENS, SPEC = "#222", "#888", "#5b2a5e", "#2a7f62"
# one colour per reader on the ROC plot (Okabe-Ito, readable by colour-blind readers too)
READERS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")


@dataclass
class Canvas:
    """A plot area with data ranges [0, 1] x [y0, y1] mapped into pixels."""

    width: int
    height: int
    y_range: tuple[float, float] = (0.0, 1.0)
    margin: tuple[int, int, int, int] = (28, 16, 46, 56)  # top, right, bottom, left
    parts: list[str] = field(default_factory=list)

    def x(self, v: float) -> float:
        _, right, _, left = self.margin
        return left + v * (self.width - left - right)

    def y(self, v: float) -> float:
        top, _, bottom, _ = self.margin
        lo, hi = self.y_range
        return self.height - bottom - (v - lo) / (hi - lo) * (self.height - top - bottom)

    def line(self, x0, y0, x1, y1, colour=INK, dash="", width=1.0) -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<line x1="{self.x(x0):.1f}" y1="{self.y(y0):.1f}" x2="{self.x(x1):.1f}" '
            f'y2="{self.y(y1):.1f}" stroke="{colour}" stroke-width="{width}"{d}/>'
        )

    def dot(self, x, y, colour, title: str = "") -> None:
        tip = f"<title>{escape(title)}</title>" if title else ""
        cx, cy = self.x(x), self.y(y)
        self.parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}">{tip}</circle>'
        )

    def polyline(self, points, colour, opacity=1.0) -> None:
        coords = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in points)
        self.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" '
            f'stroke-opacity="{opacity}"/>'
        )

    def rect(self, x0, x1, y0, y1, colour) -> None:
        x, y = self.x(x0), self.y(y1)
        w, h = self.x(x1) - x, self.y(y0) - y
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}"/>'
        )

    def text(self, px, py, label, anchor="middle", size=11, colour=INK, rotate=False) -> None:
        turn = f' transform="rotate(-90 {px:.1f} {py:.1f})"' if rotate else ""
        self.parts.append(
            f'<text x="{px:.1f}" y="{py:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{colour}"{turn}>{escape(str(label))}</text>'
        )

    def x_axis(self, label: str, ticks=(0, 0.25, 0.5, 0.75, 1)) -> None:
        lo = self.y_range[0]
        self.line(0, lo, 1, lo)
        for t in ticks:
            self.text(self.x(t), self.y(lo) + 14, f"{t:g}")
        self.text(self.x(0.5), self.height - 8, label)

    def y_axis(self, label: str, ticks) -> None:
        lo, hi = self.y_range
        self.line(0, lo, 0, hi)
        for value, name in ticks:
            self.text(self.x(0) - 6, self.y(value) + 4, name, anchor="end")
        if label:
            self.text(14, self.y((lo + hi) / 2), label, rotate=True)

    def svg(self, title: str) -> str:
        body = "".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" font-family="system-ui, '
            f'sans-serif"><title>{escape(title)}</title>'
            f'<text x="{self.width / 2}" y="16" text-anchor="middle" font-size="13" '
            f'font-weight="600">{escape(title)}</text>{body}</svg>'
        )


def roc_space(results: StudyResults) -> str:
    """Each reader as a point (1 - specificity, sensitivity) with their ROC curve; chance line."""
    c = Canvas(380, 380)
    c.line(0, 0, 1, 1, MUTED, dash="4 3")
    colours = [READERS[i % len(READERS)] for i in range(len(results.readers))]
    for reader, colour in zip(results.readers, colours, strict=True):
        c.polyline(reader.roc, colour, opacity=0.45)
    for reader, colour in zip(results.readers, colours, strict=True):
        s = reader.summary
        tip = (
            f"{reader.reader}: sensitivity {s.sensitivity.value:.2f}, "
            f"specificity {s.specificity.value:.2f}"
        )
        x, y = 1 - s.specificity.value, s.sensitivity.value
        c.dot(x, y, colour, tip)
        if np.isfinite(x) and np.isfinite(y):  # the reader's name beside their point
            c.text(c.x(x) + 6, c.y(y) - 6, reader.reader, anchor="start", size=10, colour=colour)
    c.x_axis("1 - specificity (real called synthetic)")
    c.y_axis("sensitivity (synthetic called synthetic)",
             [(t, f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)])  # fmt: skip
    return c.svg("Readers in ROC space")


def intervals(results: StudyResults) -> str:
    """Per reader: sensitivity and specificity with their 95% intervals; 0.5 is chance."""
    readers = results.readers
    n = len(readers)
    c = Canvas(560, 22 * n + 90, y_range=(n, 0), margin=(40, 16, 46, 110))
    c.line(0.5, n, 0.5, 0, MUTED, dash="4 3")
    for i, reader in enumerate(readers):
        for offset, name, colour in ((0.35, "sensitivity", SENS), (0.65, "specificity", SPEC)):
            p = getattr(reader.summary, name)
            if not np.isfinite(p.value):
                continue
            c.line(p.low, i + offset, p.high, i + offset, colour, width=1.5)
            c.dot(p.value, i + offset, colour, f"{reader.reader} {name} {p.value:.2f} "
                  f"({p.low:.2f}-{p.high:.2f})")  # fmt: skip
    c.x_axis(f"proportion with 95% {results.method} interval")
    c.y_axis("", [(i + 0.5, r.reader) for i, r in enumerate(readers)])
    c.text(c.x(0.02), 32, "● sensitivity", anchor="start", colour=SENS)
    c.text(c.x(0.3), 32, "● specificity", anchor="start", colour=SPEC)
    return c.svg("Sensitivity and specificity per reader")


def fool_rate_histogram(results: StudyResults) -> str:
    rates = np.array(list(results.fool_rates.values()))
    counts, edges = np.histogram(rates, bins=np.linspace(0, 1, 11))
    top = max(int(counts.max()) if len(counts) else 1, 1)
    c = Canvas(380, 280, y_range=(0, top))
    for count, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            c.rect(lo + 0.005, hi - 0.005, 0, count, SENS)
    c.x_axis("share of readers who called the synthetic tile real")
    step = max(1, top // 4)
    c.y_axis("synthetic tiles", [(v, str(v)) for v in range(0, top + 1, step)])
    return c.svg(f"Fool rate ({len(rates)} synthetic tiles)")


def _log_scale(low: float, high: float):
    """Exposure (ms) -> [0, 1] on a log axis from `low` to `high`."""
    span = math.log(high) - math.log(low)
    return lambda ms: (math.log(ms) - math.log(low)) / span


def _exposure_axis(c: Canvas, at, low: float, high: float, label: str) -> None:
    """The x axis of a timed plot: log exposure, ticked at the ladder's steps in range."""
    lo = c.y_range[0]
    c.line(0, lo, 1, lo)
    for ms in (ms for ms in timed.LADDER if low <= ms <= high):
        c.text(c.x(at(ms)), c.y(lo) + 14, f"{ms:g}", size=10)
    c.text(c.x(0.5), c.height - 8, label)


def psychometric(results: TimedResults) -> str:
    """Accuracy at each exposure (all readers, 95% intervals, dot area by trials) with the
    pooled fitted curve, each reader's curve faintly, and the pooled threshold's interval."""
    shown = [r.exposure for r in results.exposures]
    low, high = min([*shown, *timed.LADDER[:1]]) / 1.25, max([*shown, *timed.LADDER[-1:]]) * 1.25
    at = _log_scale(low, high)
    c = Canvas(520, 340)
    if results.pooled is not None:  # (an extrapolated interval is cut at the plot's edges)
        left, right = (min(max(at(v), 0.0), 1.0) for v in (results.pooled.low, results.pooled.high))
        c.rect(left, right, 0.0, 1.0, "#eee6ef")
    c.line(0, 0.5, 1, 0.5, MUTED, dash="4 3")
    for i, reader in enumerate(results.readers):
        if reader.fit is not None:
            c.polyline([(at(x), p) for x, p in curve_points(reader.fit, low, high)],
                       READERS[i % len(READERS)], opacity=0.35)  # fmt: skip
    if results.pooled_fit is not None:
        c.polyline([(at(x), p) for x, p in curve_points(results.pooled_fit, low, high)], INK)
    for row in results.exposures:
        p = row.accuracy
        c.line(at(row.exposure), p.low, at(row.exposure), p.high, SENS, width=1.5)
        c.dot(
            at(row.exposure),
            p.value,
            SENS,
            f"{row.exposure} ms: {row.right} of {row.n} right ({p.low:.2f}-{p.high:.2f})",
        )
    _exposure_axis(c, at, low, high, "exposure (ms, log scale)")
    c.y_axis("share right", [(t, f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1.0)])
    return c.svg("Psychometric curve: accuracy by exposure")


def thresholds(results: TimedResults) -> str:
    """Each reader's fitted threshold (hollow: outside the exposures they were shown) beside
    the pooled one with its bootstrap interval."""
    readers = [(i, r) for i, r in enumerate(results.readers) if r.fit is not None]
    values = [r.fit.threshold for _, r in readers]
    if results.pooled is not None:
        values += [results.pooled.low, results.pooled.high]
    low = min([*values, timed.LADDER[0]]) / 1.25
    high = max([*values, timed.LADDER[-1]]) * 1.25
    at = _log_scale(low, high)
    n = len(readers) + 1
    c = Canvas(520, 22 * n + 90, y_range=(n, 0), margin=(40, 16, 46, 110))
    for row, (i, reader) in enumerate(readers):  # each reader's colour as on the curves
        x = at(reader.fit.threshold)
        colour = READERS[i % len(READERS)]
        tip = f"{reader.reader}: {reader.fit.threshold:.0f} ms ({reader.trials} trials)"
        if reader.fit.measured:
            c.dot(x, row + 0.5, colour, tip)
        else:
            c.parts.append(
                f'<circle cx="{c.x(x):.1f}" cy="{c.y(row + 0.5):.1f}" r="4" fill="none" '
                f'stroke="{colour}"><title>{escape(tip)} (extrapolated)</title></circle>'
            )
    if results.pooled is not None:
        p = results.pooled
        c.line(at(p.low), n - 0.5, at(p.high), n - 0.5, INK, width=1.5)
        tip = f"pooled {p.estimate:.0f} ms ({p.low:.0f}-{p.high:.0f})"
        c.dot(at(p.estimate), n - 0.5, INK, tip)
    _exposure_axis(c, at, low, high, "threshold exposure (ms, log scale; 75% right)")
    c.y_axis("", [(row + 0.5, r.reader) for row, (_, r) in enumerate(readers)]
             + [(n - 0.5, "pooled")])  # fmt: skip
    return c.svg("Threshold exposure per reader")


def paired_accuracy(results: PairedStudy) -> str:
    """Per reader: the share of pairs where they picked the synthetic tile, with its 95%
    interval; the reader average with its MRMC interval; shaded: 0.5 +- the margin."""
    readers = results.readers
    n = len(readers) + 1
    c = Canvas(560, 22 * n + 90, y_range=(n, 0), margin=(40, 16, 46, 110))
    c.rect(0.5 - results.margin, 0.5 + results.margin, n, 0, "#eef5f1")
    c.line(0.5, n, 0.5, 0, MUTED, dash="4 3")
    for i, r in enumerate(readers):
        p = r.accuracy
        c.line(p.low, i + 0.5, p.high, i + 0.5, SENS, width=1.5)
        c.dot(p.value, i + 0.5, SENS, f"{r.reader}: {p.k} of {p.n} ({p.low:.2f}-{p.high:.2f})")
    average = results.analysis.average
    if average is not None:
        low, high = max(average.ci_low, 0.0), min(average.ci_high, 1.0)
        c.line(low, n - 0.5, high, n - 0.5, INK, width=1.5)
        c.dot(average.estimate, n - 0.5, INK,
              f"reader average {average.estimate:.3f} ({low:.3f}-{high:.3f})")  # fmt: skip
    c.x_axis("share of pairs where the synthetic tile was picked (95% interval)")
    c.y_axis("", [(i + 0.5, r.reader) for i, r in enumerate(readers)]
             + [(n - 0.5, "reader average")])  # fmt: skip
    return c.svg("Paired: picked the synthetic tile")
