# The two commands of the README: `make demo` and `make test`.
VENV := .venv
STAMP := $(VENV)/.gaze3d-installed
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml setup.py scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gaze3d demo --out demo_output

test: $(STAMP)
	bash scripts/run_tests.sh $(PYTEST_ARGS)

bench: $(STAMP)
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo_output .pytest_cache
