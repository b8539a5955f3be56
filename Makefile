# Set-up and main jobs of napari-kinetochores. See README.md.
#   make demo   create .venv, install what the demo needs (base + napari), run the sample pipeline
#               (napari, or headless + screenshot)
#   make test   create .venv, install with test extras (and the StarDist/TensorFlow extra)
#               + headless-Qt system packages, run pytest
#   make bench  run every benchmark step (quick set; `make bench BENCH_ARGS=--full` runs the whole grid)
#   make bench-check  regenerate docs/benchmarks.md's generated sections from benchmarks/results/*.json
#               into a temporary copy and fail on any difference
#   make bench-peers  create .venv-peers (Spotiflow, Big-FISH, trackpy, scikit-image), train the equal-budget Spotiflow and StarDist models (about an hour each), run the peer benchmark

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

# System packages headless Qt/vispy needs for the GUI tests and screenshots.
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 \
	libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1

.PHONY: demo test bench bench-check bench-peers peers-env lint format install system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Two stamps: `make demo` installs only what the demo needs (the package and its napari
# extra), `make test` / `bench` the rest on top (dev tools and the stardist extra), so
# `make test` after `make demo` installs only what is missing.
# torch first, pinned: on a CPU machine torch==2.13.0 is the local CPU build, and
# torchvision==0.28.0 (declared by pytorch3dunet) matches it, so pip never pulls CUDA.
$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PIP) install --quiet "torch==2.13.0" "torchvision==0.28.0"
	$(PIP) install --quiet -e ".[napari]"
	touch $@

# The stardist extra (stardist + tensorflow-cpu) and the bioimageio extra too, so the tests
# cover the StarDist backend and bioimage.io packages; neither pulls torch.
$(VENV)/.stamp-install: $(VENV)/.stamp-demo
	$(PIP) install --quiet -e ".[dev,stardist,bioimageio]"
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

# Two pytest processes: TensorFlow (the StarDist tests) and Qt crash when they share one.
test: install system-deps
# The first also runs the docstring examples of the package (doctests).
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q -m "not tensorflow" \
		--doctest-modules src/napari_kinetochores tests
	$(PY) -m pytest -q -m tensorflow

demo: $(VENV)/.stamp-demo system-deps
	@if [ -n "$$DISPLAY" ]; then \
		$(PY) -m napari_kinetochores.demo; \
	else \
		xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m napari_kinetochores.demo --headless --output demo_out; \
	fi

# PEERS_VENV / SPOTIFLOW_MODEL may point at an existing peers environment and model
# (e.g. another clone's), so a fresh clone need not install 6 GB again.
# The benchmarks are a package (benchmarks/), run as modules from the repository root.
bench: install
	$(PY) -m benchmarks.run_all --peers-python $(abspath $(PEERS_PY)) \
		--spotiflow-model $(abspath $(SPOTIFLOW_MODEL)) \
		--stardist-model $(abspath $(STARDIST_BENCH_MODEL)) $(BENCH_ARGS)

bench-check: install
	$(PY) -m benchmarks.report --check

# The peer detectors live in their own environment: Spotiflow imports torchvision,
# which the project's CPU torch 2.13 cannot import. This env takes the registry's
# standard torch build (a large download with CUDA wheels; see docs/benchmarks.md).
PEERS_VENV ?= .venv-peers
PEERS_PY := $(PEERS_VENV)/bin/python
SPOTIFLOW_MODEL ?= runs/spotiflow_budget
# The equal-budget StarDist benchmark model (configs/stardist_budget.yaml writes it here).
STARDIST_BENCH_MODEL ?= runs/stardist_budget

$(PEERS_VENV)/.stamp-peers: benchmarks/peers/requirements.txt pyproject.toml
	@start=$$(date +%s); \
	[ -x $(PEERS_PY) ] || $(PYTHON) -m venv $(PEERS_VENV); \
	$(PEERS_PY) -m pip install --quiet --disable-pip-version-check --upgrade pip && \
	nice -n 19 $(PEERS_PY) -m pip install --quiet --disable-pip-version-check -r benchmarks/peers/requirements.txt && \
	$(PEERS_PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . && \
	printf '{"install_seconds": %d, "size": "%s", "date": "%s"}\n' $$(( $$(date +%s) - start )) \
		"$$(du -sh $(PEERS_VENV) | cut -f1)" "$$(date -u +%F)" > $(PEERS_VENV)/bench_install.json
	touch $@

peers-env: $(PEERS_VENV)/.stamp-peers

$(SPOTIFLOW_MODEL)/config.yaml: | $(PEERS_VENV)/.stamp-peers
	nice -n 19 $(PEERS_PY) -m benchmarks.peers.train_spotiflow --output $(SPOTIFLOW_MODEL)

$(STARDIST_BENCH_MODEL)/weights_best.h5: | install
	mkdir -p $(STARDIST_BENCH_MODEL)_logs
	nice -n 19 $(PY) -m benchmarks.training_budgets timed --out $(STARDIST_BENCH_MODEL)_logs/timing.json \
		-- $(VENV)/bin/kinetochores train --backend stardist configs/stardist_budget.yaml

bench-peers: install peers-env $(SPOTIFLOW_MODEL)/config.yaml $(STARDIST_BENCH_MODEL)/weights_best.h5
	nice -n 19 $(PEERS_PY) -m benchmarks.peers.run_peers --quick --spotiflow-model $(SPOTIFLOW_MODEL) \
		--stardist-model $(STARDIST_BENCH_MODEL)
	$(PY) -m benchmarks.report

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) demo_out build dist src/*.egg-info
