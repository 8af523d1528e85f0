//go:build race

package e2e

// raceEnabled builds the binaries under test with the race detector when
// the tests run with it, which also reuses the packages `go test -race`
// compiled.
const raceEnabled = true
