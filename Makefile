# Fleetcast: `make help` lists the targets. The README's two commands are
# `make demo` (set up and run the main job) and `make test` (every test).
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install what the tests need (Debian packages, the pinned Rust toolchain, Kubernetes and helm built from Go); idempotent
	tests/setup

.PHONY: build
build: ## Build the workspace
	cargo build --workspace --all-targets

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: deps lint ## Run every test: installs what is missing, lints, runs all tiers
	tests/run-all

.PHONY: images
images: ## Build the operator and media-server OCI image archives into target/images (static musl binaries, no Docker daemon)
	tools/image/fleetcast

.PHONY: chart-lint
chart-lint: ## helm lint --strict the chart (charts/fleetcast); its tests are in make test
	"$$(tests/cluster/build | tail -n 1)/helm" lint --strict charts/fleetcast

.PHONY: rbac-file
rbac-file: ## Regenerate charts/rbac/rbac.yaml (the operator's RBAC without Helm) from the chart
	charts/rbac/generate

.PHONY: cluster-build
cluster-build: ## Build etcd, the Kubernetes components and helm from their Go modules (cached)
	tests/cluster/build

.PHONY: cluster-up
cluster-up: ## Start the local Kubernetes control plane (prints export KUBECONFIG=...)
	@tests/cluster/up

.PHONY: cluster-down
cluster-down: ## Stop the local Kubernetes control plane
	tests/cluster/down

.PHONY: demo
demo: ## Set up and run the main job: local control plane, operator, MediaCluster, a test stream playing
	tools/demo

.PHONY: demo-down
demo-down: ## Stop everything make demo started
	tools/demo-down

.PHONY: bench-media
bench-media: ## Side-by-side live fan-out benchmark, Fleetcast origin vs nginx-rtmp (docs/benchmarks.md)
	tools/bench-fanout.sh

.PHONY: bench-edge
bench-edge: ## Edge relay benchmark: first frame through edge tiers, origin egress, vs nginx-rtmp pull (docs/benchmarks.md)
	tools/bench-edge.sh
