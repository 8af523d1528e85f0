# syntax=docker/dockerfile:1
# The manager as a static binary, shipped alone in a distroless, non-root
# image. The build stage runs on the builder's platform and cross-compiles,
# so `docker buildx build --platform linux/amd64,linux/arm64` needs no
# emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/manager .

# distroless/static: no shell, no package manager, no libc; nonroot runs as
# UID 65532, which config/manager's runAsNonRoot requires.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
