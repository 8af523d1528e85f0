// Command mochi-mqtt runs a mochi-mqtt v2 broker for Herald's interop tests
// (internal/testenv): one plain TCP listener on the address given, anonymous
// access, the broker's default capabilities, and a line on stdout once it
// accepts connections, which the tests wait for instead of polling the port.
//
// It lives in its own module so that Herald's module never depends on the
// broker; `make interop-brokers` builds it into bin/.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "host:port of the MQTT listener")
	debug := flag.Bool("debug", false, "log every packet")
	flag.Parse()
	if err := run(*addr, *debug); err != nil {
		fmt.Fprintln(os.Stderr, "mochi-mqtt:", err)
		os.Exit(1)
	}
}

func run(addr string, debug bool) error {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	// Defaults, not a tuned configuration: the tests are about the broker
	// as people run it.
	server := mqtt.New(&mqtt.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	// AddListener binds the port, so a port taken since the test picked it
	// fails here, with "address already in use" for the test to retry on.
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if err := server.Serve(); err != nil {
		return err
	}
	fmt.Printf("mochi-mqtt %s listening on %s\n", mqtt.Version, addr)
	<-stop
	return server.Close()
}
