# Herald's build. Everything a fresh machine needs is built or installed here
# and cached under bin/: `make test` and `make demo` work from a clean clone.

IMG ?= ghcr.io/heraldiot/herald:dev

LOCALBIN := $(abspath bin)
ENVTEST_DIR := $(LOCALBIN)/k8s
export KUBEBUILDER_ASSETS := $(ENVTEST_DIR)

CONTROLLER_TOOLS_VERSION ?= v0.23.0
STATICCHECK_VERSION ?= v0.8.2
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
STATICCHECK := $(LOCALBIN)/staticcheck-$(STATICCHECK_VERSION)
include hack/helm.mk
include hack/image.mk
include hack/cluster.mk
# The interop brokers built or installed into bin/; the mochi-mqtt version is
# pinned in hack/interop/mochi/go.mod.
AEDES_VERSION ?= 1.2.0
MOCHI := $(LOCALBIN)/mochi-mqtt
AEDES := $(LOCALBIN)/aedes/.aedes-$(AEDES_VERSION)
# The kubectl on PATH talks to your cluster; the one we build talks to envtest.
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(ENVTEST_DIR)/kubectl)

GO_TEST_FLAGS ?= -race -count=1 -timeout 15m
# A broker the Makefile installed but the tests cannot find fails them
# instead of skipping them, so a run never passes by testing nothing.
INTEROP_ENV := HERALD_INTEROP_REQUIRED=1
# The same for helm (chart tests) and tmux (the plugin's terminal test).
TOOLS_ENV := $(INTEROP_ENV) HERALD_REQUIRE_TOOLS=1 HERALD_TMUX_REQUIRED=1 HERALD_HELM=$(HELM)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the API and controller markers.
	$(CONTROLLER_GEN) rbac:roleName=herald-manager crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@$(MAKE) --no-print-directory chart-sync

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail if `make manifests generate` would change checked-in files.
	@hack/verify-generated.sh "$(MAKE)"

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: verify-fmt
verify-fmt: ## Fail if gofmt would change a file.
	@out="$$(gofmt -s -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet, on the benchmark module too, so a change to Herald's dependencies that bench/ must follow fails here.
	go vet ./...
	cd bench && go vet ./...
	cd hack/interop/mochi && go vet ./...
	cd hack/image && go vet ./...

.PHONY: lint
lint: vet $(STATICCHECK) ## Run go vet and staticcheck.
	$(STATICCHECK) ./...

.PHONY: test
test: verify-generated verify-fmt vet envtest-bin broker interop-brokers $(HELM) tmux ## Run every test against a real apiserver and mosquitto, one round trip per interop broker, and the Helm chart.
	$(TOOLS_ENV) go test $(GO_TEST_FLAGS) ./...

# `make test` runs one QoS 1 round trip per interop broker; this runs every
# feature on every broker. INTEROP_BROKERS=nats,aedes picks brokers.
INTEROP_BROKERS ?=
.PHONY: interop
interop: broker interop-brokers ## Run the client's feature tests against mosquitto, mochi-mqtt, nats-server, aedes and RabbitMQ.
	$(INTEROP_ENV) HERALD_INTEROP=full HERALD_INTEROP_BROKERS=$(INTEROP_BROKERS) \
		go test -race -count=1 -timeout 10m -run '^TestInterop' -v ./mqtt/ ./internal/testenv/

# `make test` runs the fault loops small (300 devices, 5 kills, with -race);
# this runs them at full size, without -race, which would slow 2,000
# simulated devices down more than the faults do.
.PHONY: test-faults
test-faults: envtest-bin broker ## Run the full fault loops: 2,000 devices, 20 broker and 20 operator kills.
	HERALD_FAULT_DEVICES=2000 HERALD_FAULT_KILLS=20 go test -count=1 -timeout 60m -run '^TestFault' -v ./test/e2e/

.PHONY: bench
bench: broker envtest-bin ## Run the benchmarks: Herald's own, then side by side with Paho (bench/).
	go test -run '^$$' -bench . -benchmem -benchtime 1x ./internal/fleet/ ./internal/rollout/ ./controllers/
	go test -run '^$$' -bench . -benchmem ./mqtt/...
	hack/bench.sh

##@ Test environment

.PHONY: envtest-bin
envtest-bin: ## Build kube-apiserver, kubectl and etcd from the module proxy into bin/k8s.
	@hack/build-envtest.sh "$(ENVTEST_DIR)"

.PHONY: broker
broker: ## Make sure mosquitto 2.x is installed (from apt when missing).
	@hack/ensure-mosquitto.sh

.PHONY: tmux
tmux: ## Make sure tmux is installed (from apt when missing): the kubectl plugin's terminal test drives it.
	@command -v tmux >/dev/null || { echo ">> installing tmux from apt"; DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux >/dev/null; }

.PHONY: interop-brokers
interop-brokers: interop-apt $(MOCHI) $(AEDES) ## Build mochi-mqtt and install aedes into bin/, nats-server and RabbitMQ from apt when missing.

$(MOCHI): hack/interop/mochi/main.go hack/interop/mochi/go.mod hack/interop/mochi/go.sum
	@echo ">> go build: bin/mochi-mqtt from hack/interop/mochi"
	cd hack/interop/mochi && go build -o $@ .

# The stamp names the version, so changing AEDES_VERSION reinstalls.
$(AEDES): | interop-apt
	rm -rf $(LOCALBIN)/aedes
	npm install --prefix $(LOCALBIN)/aedes --no-audit --no-fund --loglevel=error aedes@$(AEDES_VERSION)
	touch $@

# nats-server and RabbitMQ come from apt, like mosquitto; this also checks
# for the Node.js that aedes needs.
.PHONY: interop-apt
interop-apt:
	@hack/interop/ensure-brokers.sh

##@ Build

.PHONY: build
build: manifests generate ## Build the manager and the command-line tools into bin/.
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/ ./cmd/...

# DEMO_KEEP=1 keeps the demo running after the rollout, until Ctrl-C.
DEMO_KEEP ?=
# DEMO_FLAGS go to the demo runner, e.g. DEMO_FLAGS='-devices 1000'.
DEMO_FLAGS ?=

.PHONY: demo
demo: envtest-bin broker demo-bin ## Run Herald end to end here: apiserver, broker, operator, a simulated fleet (DEMO_KEEP=1 keeps it running).
	@$(LOCALBIN)/herald-demo $(if $(filter 1 true yes,$(DEMO_KEEP)),-keep) $(DEMO_FLAGS)

.PHONY: demo-bin
demo-bin: ## Build the manager, fleetsim, mqttc, kubectl-herald and the demo runner into bin/.
	@echo ">> go build: bin/manager bin/fleetsim bin/mqttc bin/kubectl-herald bin/herald-demo (first time: a few minutes; then cached)"
	@start=$$(date +%s); \
	go build -o $(LOCALBIN)/manager . && \
	go build -o $(LOCALBIN)/ ./cmd/fleetsim ./cmd/mqttc ./cmd/kubectl-herald && \
	go build -o $(LOCALBIN)/herald-demo ./hack/demo && \
	echo ">> built in $$(( $$(date +%s) - start ))s"

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and every Herald object) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy CRDs, RBAC and the manager image $(IMG) to the current cluster.
	@mkdir -p $(LOCALBIN)/deploy
	@img="$(IMG)"; last="$${img##*/}"; \
	case "$$last" in *:*) name="$${img%:*}"; tag="$${img##*:}";; *) name="$$img"; tag=latest;; esac; \
	printf 'resources:\n- ../../config/default\nimages:\n- name: ghcr.io/heraldiot/herald\n  newName: %s\n  newTag: %s\n' "$$name" "$$tag" >$(LOCALBIN)/deploy/kustomization.yaml
	$(KUBECTL) apply -k $(LOCALBIN)/deploy

.PHONY: undeploy
undeploy: ## Remove what `make deploy` created.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(STATICCHECK):
	GOBIN=$(LOCALBIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(LOCALBIN)/staticcheck $@
