# One entry point for people and CI. `make run` tries Gatehouse; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test fmt-check lint deny deny-advisories unit image test-image e2e faults test-cluster bench bench-scale crds helm crane controlplane controlplane-down cluster cluster-down

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Run Gatehouse: local control plane unless KUBECONFIG is set, CRDs, example policies, operator
	@bash hack/run.sh

test: fmt-check lint deny unit test-image e2e faults test-cluster ## Everything: fmt, clippy, cargo-deny, unit tests, the image, end-to-end and fault tests on a real API server, tests on a real node

fmt-check: ## Check formatting
	cargo fmt --all -- --check

lint: ## Clippy with warnings as errors
	cargo clippy --all-targets -- -D warnings

# cargo-deny, installed on first use into the cache beside the control plane binaries, one root per
# version so that changing the pin installs the new one.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(or $(GATEHOUSE_CACHE),$(HOME)/.cache/gatehouse)/tools/cargo-deny-$(CARGO_DENY_VERSION)/bin/cargo-deny

$(CARGO_DENY):
	cargo install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(patsubst %/bin/cargo-deny,%,$@)

deny: $(CARGO_DENY) ## Licenses, bans and sources of the dependency tree (deny.toml)
	$(CARGO_DENY) check --hide-inclusion-graph licenses bans sources

deny-advisories: $(CARGO_DENY) ## RustSec advisories of the dependency tree (clones the database from github.com)
	$(CARGO_DENY) check --hide-inclusion-graph advisories

unit: ## Unit tests of pure logic, the generated-CRD, Argo CD health and image-reference checks (no server)
	cargo test --lib --bins --test crds_up_to_date --test argocd_health --test image

# The image is rebuilt only when the release binary or another input changed (hack/image/build.sh).
image: ## Build (or reuse) the operator's image gatehouse:<version> from the release binary, daemonless: target/image/gatehouse.tar
	@bash hack/image/build.sh

# The image tests are #[ignore]d (they need the built image); this target builds it and includes
# them. They unpack it and run /gatehouse in it with chroot, so they need root.
test-image: image ## Check the image: config, contents, and /gatehouse run in its unpacked root filesystem as uid 65532
	cargo test --test image -- --include-ignored --nocapture

# The tests that need the control plane are #[ignore]d, so that a plain `cargo test` lists them as
# ignored instead of passing them unrun; this target starts the control plane, then includes them.
# When it cannot start, the suite runs without them (its summary counts them as ignored) and the
# target fails, in CI and out, so that a passing `make test` always means every test ran.
# up.sh's output is copied to stderr by appending (`tee -a`): opening /dev/stderr to write would
# truncate a log file that stderr is redirected to, erasing everything `make test` printed before.
E2E_TESTS := --test e2e --test operator_process
e2e: ## End-to-end tests against kube-apiserver + etcd built from source (started if needed)
	@set -o pipefail; \
	if reason=$$(bash hack/controlplane/up.sh 2>&1 >/dev/null | tee -a /dev/stderr | tail -n 1); then \
	  cargo test $(E2E_TESTS) -- --include-ignored --nocapture; \
	else \
	  bar=$$(printf '!%.0s' {1..100}); \
	  banner="END-TO-END TESTS DID NOT RUN: hack/controlplane/up.sh failed: $${reason#controlplane: }"; \
	  printf '\n%s\n%s\nThey show as ignored below, not passed.\n%s\n\n' "$$bar" "$$banner" "$$bar" >&2; \
	  cargo test $(E2E_TESTS); \
	  printf '\n%s\n%s\n%s\n' "$$bar" "$$banner" "$$bar" >&2; \
	  exit 1; \
	fi

# Each fault test starts a control plane of its own (target/faults-<test>, removed at its end) and
# stops parts of it, so they run one at a time: two control planes and their operators at once
# would starve a 2-core machine and blur the times they print. A control plane that cannot start
# fails its test. GATEHOUSE_FAULTS_SEED replays the kill points of the SIGKILL test.
faults: ## Fault tests: operator SIGKILLed, API server away, etcd compacted (410), a poison request
	cargo test --test faults -- --include-ignored --nocapture --test-threads=1

# The same shape for the tests that need a node (tests/cluster.rs, and tests/install.rs: Gatehouse
# installed by its chart and by deploy/ from `make image`): the cluster is started (or reused) first,
# and when it cannot start the target fails with hack/cluster/up.sh's last line as the reason.
CLUSTER_TESTS := --test cluster --test install
test-cluster: image ## Tests on the local single-node cluster (started if needed): Pods, in-cluster API access, GC, installs
	@set -o pipefail; \
	if reason=$$(bash hack/cluster/up.sh 2>&1 >/dev/null | tee -a /dev/stderr | tail -n 1); then \
	  cargo test $(CLUSTER_TESTS) -- --include-ignored --nocapture; \
	else \
	  bar=$$(printf '!%.0s' {1..100}); \
	  banner="CLUSTER TESTS DID NOT RUN: hack/cluster/up.sh failed: $${reason#cluster: }"; \
	  printf '\n%s\n%s\nThey show as ignored below, not passed.\n%s\n\n' "$$bar" "$$banner" "$$bar" >&2; \
	  cargo test $(CLUSTER_TESTS); \
	  printf '\n%s\n%s\n%s\n' "$$bar" "$$banner" "$$bar" >&2; \
	  exit 1; \
	fi

bench: ## Benchmark approval-to-grant latency and expiry lag on the local control plane; prints a table
	cargo bench --bench lifecycle

bench-scale: ## Benchmark N requests and shares (GATEHOUSE_BENCH_SCALE, default 1000) against a tight client; prints a table
	cargo bench --bench scale

crds: ## Regenerate crds/ and its copies in deploy/base and charts/gatehouse/crds (each tool needs its own) from the Rust types
	cargo run --quiet -- crd > crds/gatehouse.yaml
	cp crds/gatehouse.yaml deploy/base/crds.yaml
	cp crds/gatehouse.yaml charts/gatehouse/crds/gatehouse.yaml
	cargo run --quiet -- api-reference > docs/api.md

helm: ## Build (or reuse) the helm CLI from its Go module; prints its path
	@bash hack/helm/build.sh

crane: ## Build (or reuse) the crane CLI (go-containerregistry) from its Go module; prints its path
	@bash hack/crane/build.sh

controlplane: ## Start (or reuse) the local control plane; writes target/controlplane/kubeconfig
	@bash hack/controlplane/up.sh

controlplane-down: ## Stop the local control plane and remove its data
	@bash hack/controlplane/down.sh

# The operator's image (make image writes target/image/gatehouse.tar) is imported when present; after
# a new `make image`, `make cluster` (or hack/cluster/load-image.sh <tar>) imports it again.
OPERATOR_IMAGE := target/image/gatehouse.tar
cluster: ## Start (or reuse) the local single-node cluster (needs root); writes target/cluster/kubeconfig
	@bash hack/cluster/up.sh
	@if [[ -f $(OPERATOR_IMAGE) ]]; then bash hack/cluster/load-image.sh $(OPERATOR_IMAGE) >/dev/null; fi

cluster-down: ## Stop the local cluster and remove everything it made (containers, mounts, bridge, iptables rules)
	@bash hack/cluster/down.sh
