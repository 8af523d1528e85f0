// Package image tests the manager's container image as `make image-tar`
// builds it without Docker: hack/image's herald-image packing a static
// manager. It checks the image against the Dockerfile (the same entrypoint
// and user, a static manager, no shell) and that it is reproducible.
//
// The tests build the manager and herald-image themselves, with the go
// command, and read the tarball with the standard library only, so that
// Herald's module does not depend on go-containerregistry. When hack/image's
// modules cannot be downloaded the tests are skipped, unless
// HERALD_REQUIRE_TOOLS=1, as under make, which fails them.
package image
