# Tuoguan: the two commands a new user needs are `make up` and `make test`.
.PHONY: up test test-unit test-browser test-observability bench bench-surge bench-ticketing protos check-protos i18n lint \
	install infra clean check-deploy check-rules

install:
	uv sync --frozen

infra:
	./scripts/infra.sh

up:
	./scripts/up.sh

test: install infra check-protos lint
	uv run --no-sync pytest

test-unit: install
	uv run --no-sync pytest -m "not integration"

test-browser: install infra
	uv run --no-sync pytest tests/browser

test-observability: install infra
	uv run --no-sync pytest tests/observability

i18n:
	./scripts/i18n.sh

check-deploy: install
	./scripts/check_deploy.sh

check-rules:
	promtool check config observability/prometheus/prometheus.yml
	promtool check rules observability/prometheus/rules/*.yml
	promtool test rules observability/prometheus/tests/*.yml
	amtool check-config observability/alertmanager/alertmanager.yml

bench: bench-surge bench-ticketing

bench-surge: install infra
	uv run --no-sync python -m bench.surge

bench-ticketing: install infra
	uv run --no-sync python -m bench.ticketing

protos:
	./scripts/gen_protos.sh

lint:
	uv run --no-sync ruff check libs/common services tests bench

check-protos:
	./scripts/check_proto_drift.sh

clean:
	rm -rf .run artifacts .pytest_cache
