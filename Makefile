# The README's two commands: `make demo` and `make test`. Both work from a fresh clone.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The PCam image folder for `make demo`: data/pcam, else the team's ../shared/pcam; with neither,
# the demo tries the official download and otherwise says how to get PCam.
PCAM ?= $(firstword $(wildcard data/pcam ../shared/pcam) data/pcam)
# The demo trains its generator for DEMO_STEPS (autoencoder,denoiser; about 10 minutes on a
# 2-core VM with AMX), and the whole demo, the install included, aims to be ready within
# DEMO_MINUTES of `make demo`'s start: training stops at what the steps before and after it
# leave (an Intel 2-core VM without AMX needs about 14 minutes for the preset's minimum of
# 300,600 steps, an AMD EPYC without AVX-512 23-29, and is refused at once: README.md).
DEMO_STEPS ?= 700,1300
DEMO_MINUTES ?= 20
DEMO_STARTED := $(shell date +%s)
# the generator's preset: cpu, or tiny (seconds of training, tiles not worth reading: checks
# only; the demo's cohort and study belong to the preset that made them, so use a new database)
DEMO_PRESET ?= cpu
HOST ?= 127.0.0.1:8000
# CPU-only machines take the local CPU torch wheel; a GPU node sets CONSTRAINTS= to keep its CUDA build.
CONSTRAINTS ?= constraints/cpu.txt
# one pytest-xdist worker per core (each runs torch on one thread: tests/conftest.py); a worker
# that runs out of tests takes some from the other's queue (worksteal), so the heavy tests of the
# last batch do not leave one core idle for minutes
PYTEST_ARGS ?= -n auto --dist worksteal

.PHONY: demo test install lint

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py demo --pcam "$(PCAM)" --preset $(DEMO_PRESET) --train-steps $(DEMO_STEPS) --minutes $(DEMO_MINUTES) --started $(DEMO_STARTED) --host $(HOST)
	$(PY) manage.py runserver --noreload $(HOST)
