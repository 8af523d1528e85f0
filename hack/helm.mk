# The Helm chart's build and tests; the Makefile includes this file.
#
# helm is built from the Go module proxy at the version hack/helm/go.mod pins,
# in that module of its own, so Herald's module never depends on Helm. The
# binary's name carries the version: changing the pin builds the new one.

LOCALBIN ?= $(abspath bin)
ifndef HELM_VERSION
HELM_VERSION := $(shell awk '$$1 == "helm.sh/helm/v4" { print $$2; exit }' hack/helm/go.mod)
endif
HELM := $(LOCALBIN)/helm-$(HELM_VERSION)
CHART := charts/herald

##@ Helm chart

.PHONY: helm
helm: $(HELM) ## Build helm from the module proxy into bin/ (first time: 5 to 10 minutes on 2 cores).

$(HELM):
	@test -n "$(HELM_VERSION)" || { echo "cannot read helm's version from hack/helm/go.mod" >&2; exit 1; }
	@echo ">> building helm $(HELM_VERSION) from the module proxy (first time: 5 to 10 minutes)"
	@start=$$(date +%s); \
	cd hack/helm && CGO_ENABLED=0 GOBIN=$(LOCALBIN)/.helm-$(HELM_VERSION) go install -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" helm.sh/helm/v4/cmd/helm && \
	mv $(LOCALBIN)/.helm-$(HELM_VERSION)/helm $@ && rmdir $(LOCALBIN)/.helm-$(HELM_VERSION) && \
	echo ">> built helm in $$(( $$(date +%s) - start ))s"

# HERALD_REQUIRE_TOOLS=1 fails the chart tests when helm or the control plane
# is missing instead of skipping them; `make test` should set it too.
.PHONY: test-helm
test-helm: envtest-bin $(HELM) ## Render the chart, apply it to a test apiserver, run the manager with its RBAC, check its CRDs, dashboard and alerts.
	HERALD_REQUIRE_TOOLS=1 HERALD_HELM=$(HELM) go test -count=1 -timeout 10m ./test/helm/...

.PHONY: chart-sync
chart-sync: ## Copy the generated CRDs and the manager's ClusterRole rules into the chart (after `make manifests`).
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart.
	$(HELM) lint --strict $(CHART)

.PHONY: helm-package
helm-package: $(HELM) ## Package the chart into dist/.
	$(HELM) package $(CHART) --destination dist
