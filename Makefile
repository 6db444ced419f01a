# The two commands of the README: `make demo` and `make test`.
# Both install the versions in requirements/lock.txt (the ones the suite passed with).
VENV := .venv
STAMP := $(VENV)/.gaze3d-installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-latest lock bench checkpoint volume-checkpoint clean

$(STAMP): pyproject.toml setup.py scripts/setup.sh requirements/lock.txt
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gaze3d demo --out demo_output

test: $(STAMP)
	bash scripts/run_tests.sh $(PYTEST_ARGS)

# Not in CI: the newest release of every dependency (torch stays the 2.13.0 CPU
# wheel) in a throw-away environment, to see upstream drift before users do.
test-latest:
	bash scripts/test_latest.sh $(PYTEST_ARGS)

# Re-resolve requirements/lock.txt (then run `make test` before committing it).
lock:
	bash scripts/lock.sh

# Retrain the shipped interactive checkpoint from procedural scenes (docs/models.md).
checkpoint: $(STAMP)
	bash scripts/train_checkpoint.sh

# Retrain the shipped volume model from the label volumes inside the wheels (docs/volumes.md).
volume-checkpoint: $(STAMP)
	bash scripts/train_volume_checkpoint.sh

bench: $(STAMP)
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo_output .pytest_cache
