package testenv

import "net"

// FreeAddrOn returns host:port, a port of host that was free a moment ago;
// an empty host means the loopback address, as FreeAddr.
//
// A broker on another address than the loopback one serves clients the
// loopback interface cannot reach: the cluster tier's pods, which reach
// the node through their bridge's gateway (BrokerOptions.Host).
func FreeAddrOn(host string) (string, error) {
	if host == "" {
		return FreeAddr()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
