"""Number formatting for the dashboards of both apps: a proportion with its interval, nan as a
dash."""

from __future__ import annotations

import math

from django import template

register = template.Library()
DASH = "\u2013"  # en dash


@register.filter
def num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return f"{value:.{digits}f}"


@register.filter
def interval(p) -> str:
    """0.55 (0.41 to 0.68, en dash), from anything with value, low and high."""
    if p is None or not math.isfinite(p.value):
        return DASH
    if p.low is None or p.high is None or not (math.isfinite(p.low) and math.isfinite(p.high)):
        return f"{p.value:.2f} (no interval)"
    return f"{p.value:.2f} ({p.low:.2f}{DASH}{p.high:.2f})"


@register.filter
def pvalue(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def mul1000(value) -> str:
    return num(value * 1000 if value is not None else None, 2)
