# The manager's container image, built without Docker and without a registry;
# the Makefile includes this file.
#
# bin/herald-image is built from hack/image, a module of its own that pins
# go-containerregistry, so Herald's module never depends on it. It packs the
# static manager into a `docker save` tarball that `ctr images import` and
# `docker load` read: the image the Dockerfile builds (docs/development.md,
# "Container image without Docker", says what differs). test/image checks it.

LOCALBIN ?= $(abspath bin)
IMG ?= ghcr.io/heraldiot/herald:dev
HERALD_IMAGE := $(LOCALBIN)/herald-image
IMAGE_TAR := $(LOCALBIN)/herald-manager-image.tar
# The image's architecture, as the Dockerfile's TARGETARCH: the manager is
# cross-compiled and herald-image reads the platform from its build info.
IMAGE_GOARCH ?= $(shell go env GOARCH)
IMAGE_MANAGER := $(LOCALBIN)/image/manager-linux-$(IMAGE_GOARCH)
# The org.opencontainers.image.version label; empty means IMG's tag.
IMAGE_VERSION ?=

##@ Container image

# The manager is built every time, as the Dockerfile builds it; Go's build
# cache makes an unchanged one a matter of seconds.
.PHONY: image-tar
image-tar: $(HERALD_IMAGE) ## Build the Dockerfile's manager image without Docker into bin/herald-manager-image.tar (IMG names it; SOURCE_DATE_EPOCH is honoured).
	@mkdir -p $(dir $(IMAGE_MANAGER))
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_GOARCH) go build -trimpath -ldflags "-s -w" -o $(IMAGE_MANAGER) .
	$(HERALD_IMAGE) -binary $(IMAGE_MANAGER) -out $(IMAGE_TAR) -ref $(IMG) $(if $(IMAGE_VERSION),-version $(IMAGE_VERSION))

$(HERALD_IMAGE): hack/image/go.mod hack/image/go.sum $(wildcard hack/image/*.go)
	@echo ">> go build: bin/herald-image from hack/image"
	cd hack/image && go build -trimpath -o $@ .
