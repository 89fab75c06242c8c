# mesosk3s — K3s clusters on Apache Mesos, run by a Kubernetes operator.
# `make help` lists the targets.

IMG ?= mesosk3s/operator:dev
# Default Mesos master written into the release manifest (empty: config/manager's
# http://leader.mesos:5050) and where `make release-manifest` writes it.
MESOS_MASTER ?=
RELEASE_MANIFEST ?= dist/install.yaml
# `make image`: platforms (comma-separated) and the OCI layout tarball it writes.
PLATFORMS ?= linux/amd64
IMAGE_TAR ?= bin/mesosk3s-operator.oci.tar
CONTROLLER_GEN_VERSION ?= v0.23.0
# Go test flags; CI and `make test` run everything with the race detector.
TEST_FLAGS ?= -race -count=1 -timeout 45m
# Flags for the playground, e.g. `make dev DEV_FLAGS=--ha`.
DEV_FLAGS ?=
# The packages with benchmarks; make test runs each of them a few times.
BENCH_PACKAGES ?= ./mesosbridge ./mesostest ./controllers

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash -o pipefail

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests under config/.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart carries copies of both (charts/chart_test.go checks they are equal).
	cp config/crd/bases/cluster.mesosk3s.io_k3sclusters.yaml charts/mesosk3s/files/crd/
	cp config/rbac/role.yaml charts/mesosk3s/files/rbac/role.yaml

.PHONY: verify-generated
verify-generated: ## Fail when committed generated files are stale.
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: fmt-check
fmt-check: ## Fail when Go code is not gofmt-clean.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: helm-lint
helm-lint: ## Lint and render the Helm chart (charts/mesosk3s) through the Helm SDK; no helm binary needed.
	go test -count=1 ./charts/

.PHONY: envtest-assets
envtest-assets: ## Build (once) kube-apiserver and etcd for tests into bin/envtest and print the directory.
	@hack/envtest-assets.sh

.PHONY: k3s
k3s: ## Build (once) the static K3s binary into bin/k3s for the playground and end-to-end test.
	@hack/build-k3s.sh >/dev/null

.PHONY: k3s-previous
k3s-previous: ## Build (once) the older K3s the upgrade tests start from (v1.25.2+k3s1) into bin/k3s-v1.25.2+k3s1.
	@hack/build-k3s.sh previous >/dev/null

.PHONY: flux
flux: ## Build (once) Flux's source-controller and kustomize-controller and their CRDs into bin/flux for hack/gitops.
	@hack/build-flux.sh >/dev/null

.PHONY: node-prereqs
node-prereqs: ## Install (once) what real K3s nodes need here: Debian's containerd, runc, CNI plugins, iptables, busybox-static; the flannel CNI plugin and a busybox image into bin/node.
	@hack/node-prereqs.sh
	@hack/node-assets.sh >/dev/null

.PHONY: test
test: verify-generated fmt-check vet k3s k3s-previous flux node-prereqs ## Run every test against a real API server, real K3s and a real Flux (all built on first use).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" MESOSK3S_REQUIRE_K3S=1 MESOSK3S_REQUIRE_FLUX=1 go test $(TEST_FLAGS) ./...
	@# Every benchmark, a few iterations: one that no longer runs fails here, not in a release.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test -run '^$$' -bench . -benchtime 3x $(BENCH_PACKAGES)

.PHONY: soak
soak: ## The fault soak (hack/soak, docs/soak.md) for 10 minutes: the operator binary, a real API server, the Mesos emulator; SOAK_FLAGS=-soak.seed=N replays a run.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test ./hack/soak -run TestSoak -soak.duration 10m -timeout 30m -v $(SOAK_FLAGS)

.PHONY: dev
dev: build k3s node-prereqs ## The playground: API server, Mesos emulator, operator, a real K3s server and real K3s nodes, until Ctrl-C (DEV_FLAGS=--ha: three servers).
	@go run ./hack/dev --assets "$$(hack/envtest-assets.sh)" $(DEV_FLAGS)

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/manager.
	go build -o $(BIN)/manager .

.PHONY: run
RUN_NAMESPACE ?= mesosk3s-system
run: ## Run the operator against the cluster in the current kubeconfig, with leader election in RUN_NAMESPACE (so it waits while a deployed operator leads).
	@kubectl create namespace $(RUN_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	go run . --log-development --leader-elect --leader-election-namespace $(RUN_NAMESPACE)

.PHONY: image
image: ## Build the operator image IMG without Docker, reproducibly, as an OCI layout tarball (IMAGE_TAR) and directory.
	go run ./hack/image --ref "$(IMG)" --platforms "$(PLATFORMS)" --out "$(IMAGE_TAR)"

.PHONY: docker-build
docker-build: ## Build the operator image (needs a Docker engine; none runs on the dev machines).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster in the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and with them every K3sCluster) from the cluster.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator with image IMG to the cluster in the current kubeconfig.
	hack/deploy.sh apply "$(IMG)"

.PHONY: release-manifest
release-manifest: manifests ## Write dist/install.yaml (CRD, namespace, RBAC, 2-replica Deployment of IMG, metrics Service) for `kubectl apply -f`.
	@mkdir -p "$(dir $(RELEASE_MANIFEST))"
	@{ echo "# mesosk3s operator $(IMG): generated by make release-manifest from config/default; do not edit."; \
	  MESOS_MASTER="$(MESOS_MASTER)" hack/deploy.sh render "$(IMG)"; } > "$(RELEASE_MANIFEST).tmp"
	@mv "$(RELEASE_MANIFEST).tmp" "$(RELEASE_MANIFEST)"
	@echo "wrote $(RELEASE_MANIFEST) for $(IMG)"

.PHONY: undeploy
undeploy: ## Remove the operator (not the CRD: K3sClusters and their Mesos tasks stay).
	hack/deploy.sh delete "$(IMG)"

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)
