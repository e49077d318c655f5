"""Fault tests: commands killed with SIGKILL, PostgreSQL restarted under readers (-m faults)."""

from __future__ import annotations

import pytest

from tests.faults.harness import SUMMARY

# The fixture tiles and their annotation, shared with the generation tests.
from tests.generation.conftest import annotated, tile_tree  # noqa: F401


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("fault injection")
        for line in SUMMARY:
            terminalreporter.write_line(line)
