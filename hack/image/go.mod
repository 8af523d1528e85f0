// Module image builds herald-image, which packs the static manager into a
// container image tarball with go-containerregistry, so that a cluster can
// run Herald without Docker or a registry. It is a build module only:
// Herald's own module never imports go-containerregistry.
module github.com/heraldiot/herald/hack/image

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
