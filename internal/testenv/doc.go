// Package testenv starts the real components Herald's tests run against: a
// mosquitto broker on a free loopback port, and a kube-apiserver with etcd
// (envtest) built by `make envtest-bin`. Each test gets its own processes and
// its own files, so tests never depend on a service of the machine.
package testenv
