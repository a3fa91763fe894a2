# One entry point for people and CI. `make run` tries Gatehouse; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test fmt-check lint unit e2e bench crds controlplane controlplane-down

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Run Gatehouse: local control plane unless KUBECONFIG is set, CRDs, example policies, operator
	@bash hack/run.sh

test: fmt-check lint unit e2e ## Everything: fmt, clippy, unit tests, end-to-end tests on a real API server

fmt-check: ## Check formatting
	cargo fmt --all -- --check

lint: ## Clippy with warnings as errors
	cargo clippy --all-targets -- -D warnings

unit: ## Unit tests of pure logic and the generated-CRD check (no server)
	cargo test --lib --bins --test crds_up_to_date

e2e: ## End-to-end tests against kube-apiserver + etcd built from source (started if needed)
	cargo test --test e2e --test operator_process -- --nocapture

bench: ## Benchmark approval-to-grant latency and expiry lag on the local control plane; prints a table
	cargo bench --bench lifecycle

crds: ## Regenerate crds/ (and its copy in deploy/base, which kustomize needs inside the base) from the Rust types
	cargo run --quiet -- crd > crds/gatehouse.yaml
	cp crds/gatehouse.yaml deploy/base/crds.yaml

controlplane: ## Start (or reuse) the local control plane; writes target/controlplane/kubeconfig
	@bash hack/controlplane/up.sh

controlplane-down: ## Stop the local control plane and remove its data
	@bash hack/controlplane/down.sh
