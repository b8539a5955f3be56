# Set-up and main jobs of napari-kinetochores. See README.md.
#   make demo   create .venv, install, run the sample pipeline (napari, or headless + screenshot)
#   make test   create .venv, install with test extras + headless-Qt system packages, run pytest
#   make bench  run the benchmark scripts (quick set)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

# System packages headless Qt/vispy needs for the GUI tests and screenshots.
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 \
	libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1

.PHONY: demo test bench lint format install system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned: on a CPU machine torch==2.13.0 is the local CPU build, and
# torchvision==0.28.0 (declared by pytorch3dunet) matches it, so pip never pulls CUDA.
$(VENV)/.stamp-install: pyproject.toml | $(PY)
	$(PIP) install --quiet "torch==2.13.0" "torchvision==0.28.0"
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.stamp-install

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install system-deps
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q

demo: install system-deps
	@if [ -n "$$DISPLAY" ]; then \
		$(PY) -m napari_kinetochores.demo; \
	else \
		xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m napari_kinetochores.demo --headless --output demo_out; \
	fi

bench: install
	$(PY) benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) demo_out build dist src/*.egg-info
