package testenv

import "os/exec"

// findMochi finds the mochi-mqtt broker that `make interop-brokers` builds
// from hack/interop/mochi into bin/.
func findMochi() (launcher, error) {
	bin, err := repoBin("mochi-mqtt")
	if err != nil {
		return nil, err
	}
	return func(_, addr string) ([]*process, error) {
		p, err := startProcess("mochi-mqtt", exec.Command(bin, "-addr", addr), " listening on ")
		if err != nil {
			return nil, err
		}
		return []*process{p}, nil
	}, nil
}
