"""The time budget's forecast: a budget far below the minimum steps is refused at once; a near
miss (ten timed steps are a noisy forecast) trains on towards the minimum."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from generation.ldm.budget import BudgetError, TimeBudget
from generation.ldm.config import GeneratorConfig


class Phase(TimeBudget):
    def __init__(self, steps_per_second: float, seconds_left: float, minimum: int) -> None:
        self.config = GeneratorConfig(min_unet_steps=minimum, unet_steps=100_000)
        self.plan = {"denoiser": 100_000}
        self.planned = {"denoiser": False}
        self.accelerator = SimpleNamespace(num_processes=1)
        self.session = [i / steps_per_second for i in range(13)]
        self.until = time.monotonic() + seconds_left

    def forecast(self) -> int:
        self._plan_phase("denoiser", 13, self.session, self.until)
        return self.plan["denoiser"]


def test_a_near_miss_trains_towards_the_minimum_and_a_far_miss_is_refused():
    assert 1000 <= Phase(1.0, 1000, 600).forecast() <= 1013  # enough: the forecast stands
    assert Phase(1.0, 560, 600).forecast() == 600  # about 573 forecast, 95% of 600: train on
    with pytest.raises(BudgetError, match=r"would reach 3\d\d steps"):
        Phase(1.0, 300, 600).forecast()  # 52% of the minimum: refused at once
