# mmrec: `make demo` runs the main job, `make test` the test suite. Both install what
# they need first: ffmpeg (apt-get, when missing; `make test` also headless Chromium and
# its driver, for the page's browser tests) and the Python stack into .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_LIB ?= demo_library
DEMO_DB  ?= demo.lance
# offline-tiny runs anywhere (random tiny CLIP/CLAP + the real packaged MiniLM); with real
# weights configured (see `mmrec extractors`), run `make demo DEMO_PRESET=default`.
DEMO_PRESET ?= offline-tiny
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install tools ffmpeg lint lock clean

demo: install
	$(BIN)/mmrec samples $(DEMO_LIB) --speech
	$(BIN)/mmrec ingest $(DEMO_LIB) --db $(DEMO_DB) --preset $(DEMO_PRESET)
	$(BIN)/mmrec query --db $(DEMO_DB) --text "football match goals" -k 5
	$(BIN)/mmrec query --db $(DEMO_DB) --file $(DEMO_LIB)/pasta_night.mp4 -k 5
	$(BIN)/mmrec query --db $(DEMO_DB) --text "relaxing sounds" --segments -k 5 --where "kind = 'audio'"
	$(BIN)/mmrec query --db $(DEMO_DB) --text "where does honey come from" --segments -k 3
	$(BIN)/mmrec stats --db $(DEMO_DB)
	$(BIN)/mmrec interactions import $(DEMO_LIB)/interactions.csv --db $(DEMO_DB)
	$(BIN)/mmrec recommend --db $(DEMO_DB) --user ana -k 3 --explain
	$(BIN)/mmrec recommend --db $(DEMO_DB) --interests "jazz, relaxing rain" -k 3
	$(BIN)/mmrec evaluate --db $(DEMO_DB) --interactions $(DEMO_LIB)/interactions.csv -k 3

test: install
	$(BIN)/python -m pytest

install: tools $(STAMP)

# Debian packages, checked on every run and installed by one apt-get call when missing:
# ffmpeg and Tesseract with its English data always (ingest reads on-screen text), and
# espeak-ng (the demo's and the tests' spoken clips) when it is not on PATH; chromium and
# chromium-driver only when the goals include `test` (the page's browser tests drive
# /usr/bin/chromium through /usr/bin/chromedriver), with Tesseract's Chinese data and a
# small Chinese font (5 MB) for the on-screen Chinese text test.
APT_TOOLS ?= ffmpeg tesseract-ocr tesseract-ocr-eng $(if $(shell command -v espeak-ng),,espeak-ng) \
	$(if $(filter test,$(MAKECMDGOALS)),chromium chromium-driver tesseract-ocr-chi-sim fonts-wqy-microhei)

tools:
	@missing=$$(for t in $(APT_TOOLS); do case $$t in \
		ffmpeg) command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || echo ffmpeg;; \
		chromium) test -x /usr/bin/chromium || echo chromium;; \
		chromium-driver) test -x /usr/bin/chromedriver || echo chromium-driver;; \
		tesseract-ocr) command -v tesseract >/dev/null 2>&1 || echo tesseract-ocr;; \
		tesseract-ocr-eng) tesseract --list-langs 2>/dev/null | grep -qx eng || echo $$t;; \
		tesseract-ocr-chi-sim) tesseract --list-langs 2>/dev/null | grep -qx chi_sim || echo $$t;; \
		fonts-wqy-microhei) fc-list :lang=zh file 2>/dev/null | grep -q . || echo $$t;; \
		*) echo $$t;; \
		esac; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The lock file (pip freeze on Python 3.11) is applied as a constraint; uv is used when
# it installs, plain pip otherwise. --no-cache keeps small disks from filling up.
# Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set (as on many
# machines and images) every process would otherwise compile torch & co. again (~20 s).
# compileall also covers mmrec's own sources (an editable install) and older venvs.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --no-cache-dir --disable-pip-version-check uv \
		|| echo "uv unavailable: installing with pip"
	@if [ -x $(BIN)/uv ]; then \
		$(BIN)/uv pip install --no-cache --compile-bytecode --python $(BIN)/python \
			-c requirements.lock -e '.[dev,ray]'; \
	else \
		$(BIN)/python -m pip install --no-cache-dir -c requirements.lock -e '.[dev,ray]'; \
	fi
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib mmrec extractors kernels >/dev/null
	@touch $@

ffmpeg:
	@$(MAKE) --no-print-directory tools APT_TOOLS=ffmpeg

lint: install
	$(BIN)/ruff check mmrec extractors kernels benchmarks tests

# Refresh the lock after changing dependencies (numpy stays unpinned: the GPU
# machines run Python 3.12, where newer numpy releases apply).
lock: install
	$(BIN)/uv pip freeze --python $(BIN)/python --exclude-editable \
		| grep -v -i -E '^(numpy|uv)==' > requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_LIB) $(DEMO_DB) mmrec.lance .pytest_cache
