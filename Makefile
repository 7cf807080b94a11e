# Tuoguan: the two commands a new user needs are `make up` and `make test`.
.PHONY: help up test test-unit test-browser test-observability bench bench-surge bench-ticketing protos check-protos i18n lint \
	install infra clean check-deploy check-rules

help: ## list the targets, one line each
	@awk -F ':[^#]*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "  make %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

install: ## install the workspace exactly as locked (uv sync --frozen)
	uv sync --frozen

infra: ## check PostgreSQL, RabbitMQ and Redis answer (start or explain them)
	./scripts/infra.sh

up: ## install, migrate, seed demo data and run every process; Ctrl-C stops them all
	./scripts/up.sh

test: install infra check-protos lint ## everything: lint, proto drift, unit, interface, end-to-end and Chromium tests
	uv run --no-sync pytest

test-unit: install ## the domain tests only: pure rules, no I/O, seconds
	uv run --no-sync pytest -m "not integration"

test-browser: install infra ## only the Chromium journeys (screenshots in artifacts/screenshots/)
	uv run --no-sync pytest tests/browser

test-observability: install infra ## the Prometheus rules, dashboards and a real Prometheus scraping the platform
	uv run --no-sync pytest tests/observability

i18n: ## refresh the portal's message catalogues from the code
	./scripts/i18n.sh

check-deploy: install ## render the Helm chart, lint and validate it offline, run the Tiltfile on stubs
	./scripts/check_deploy.sh

check-rules: ## promtool and amtool checks of the Prometheus and Alertmanager files
	promtool check config observability/prometheus/prometheus.yml
	promtool check rules observability/prometheus/rules/*.yml
	promtool test rules observability/prometheus/tests/*.yml
	amtool check-config observability/alertmanager/alertmanager.yml

bench: bench-surge bench-ticketing ## bench-surge, then bench-ticketing

bench-surge: install infra ## the Monday-morning surge benchmark (07:00 burst, hot slots, 300/s sustained)
	uv run --no-sync python -m bench.surge

bench-ticketing: install infra ## the O&M desk benchmark
	uv run --no-sync python -m bench.ticketing

protos: ## regenerate the Python code from proto/
	./scripts/gen_protos.sh

lint: ## ruff over the library, services, tests and benchmarks
	uv run --no-sync ruff check libs/common services tests bench

check-protos: ## generated code matches proto/, buf lint, buf breaking against the v1 contract
	./scripts/check_proto_drift.sh

clean: ## remove .run, artifacts and the pytest cache
	rm -rf .run artifacts .pytest_cache
