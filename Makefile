# The README's two commands: `make demo` and `make test`. Both work from a fresh clone.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PCAM ?= $(if $(wildcard data/pcam),data/pcam,../shared/pcam)
HOST ?= 127.0.0.1:8000
# CPU-only machines take the local CPU torch wheel; a GPU node sets CONSTRAINTS= to keep its CUDA build.
CONSTRAINTS ?= constraints/cpu.txt
PYTEST_ARGS ?=

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
	$(PY) manage.py migrate --noinput
	@test -d "$(PCAM)" || { echo "No PCam tiles at $(PCAM). Put the PCam image folder there, or run: make demo PCAM=/path/to/pcam"; exit 2; }
	$(PY) manage.py import_tiles "$(PCAM)" --dataset pcam-sample
	$(PY) manage.py annotate_tiles --dataset pcam-sample
	$(PY) manage.py shell -c "from django.contrib.auth import get_user_model as g; U=g(); U.objects.filter(username='admin').exists() or U.objects.create_superuser('admin', '', 'histostudy-admin'); print('Admin login: admin / histostudy-admin')"
	@echo "Open http://$(HOST)/admin/ to browse datasets, tiles and morphology clusters."
	$(PY) manage.py runserver $(HOST)
