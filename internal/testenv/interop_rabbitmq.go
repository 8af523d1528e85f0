package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// rabbitMQServer is where Debian's rabbitmq-server package puts the start
// script that runs the broker in the foreground as the calling user (the one
// in /usr/sbin switches to the rabbitmq user and logs to /var/log).
const rabbitMQServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// findRabbitMQ finds Debian's RabbitMQ, with its MQTT plugin, and the
// Erlang port mapper it registers with.
func findRabbitMQ() (launcher, error) {
	if _, err := os.Stat(rabbitMQServer); err != nil {
		return nil, err
	}
	plugins, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_mqtt-*")
	if len(plugins) == 0 {
		return nil, fmt.Errorf("the rabbitmq_mqtt plugin is not installed beside %s", rabbitMQServer)
	}
	epmd, err := lookPath("epmd")
	if err != nil {
		return nil, err
	}
	return func(dir, addr string) ([]*process, error) {
		return launchRabbitMQ(epmd, dir, addr)
	}, nil
}

// launchRabbitMQ starts a RabbitMQ node of its own: its own Erlang port
// mapper, ports, configuration, database and logs, and none of the
// machine's (no /etc/rabbitmq, no service, no epmd on the shared port 4369).
// A node that finds no port mapper starts one as a daemon, which would
// outlive the test, so ours is started first, as a child the test owns.
func launchRabbitMQ(epmdBin, dir, addr string) ([]*process, error) {
	epmdAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	distAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, epmdPort, _ := net.SplitHostPort(epmdAddr)
	_, distPort, _ := net.SplitHostPort(distAddr)
	_, mqttPort, _ := net.SplitHostPort(addr)

	// At debug level 2 epmd says when it has bound its port.
	epmd, err := startProcess("epmd", exec.Command(epmdBin, "-address", "127.0.0.1", "-port", epmdPort, "-d", "-d"),
		"entering the main select() loop")
	if err != nil {
		return nil, err
	}

	// The AMQP listener is off: the tests speak MQTT only. Anonymous MQTT
	// clients log in as the default user, guest, whom RabbitMQ admits from
	// loopback only, which is where the tests are.
	conf := strings.Join([]string{
		"listeners.tcp = none",
		"mqtt.listeners.tcp.default = " + addr,
		"mqtt.allow_anonymous = true",
	}, "\n") + "\n"
	files := map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[rabbitmq_mqtt].\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			epmd.stop()
			return nil, err
		}
	}
	cmd := exec.Command(rabbitMQServer)
	cmd.Dir = dir
	cmd.Env = append(withoutRabbitMQEnv(os.Environ()),
		// The Erlang cookie is written to $HOME.
		"HOME="+dir,
		"ERL_EPMD_PORT="+epmdPort,
		"RABBITMQ_NODENAME=herald-"+mqttPort+"@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_DIST_PORT="+distPort,
		// Erlang distribution on loopback only.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		// Files that do not exist, so the machine's in /etc/rabbitmq are not read.
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(dir, "plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		// Log to the console, which the test keeps.
		"RABBITMQ_LOGS=-",
	)
	broker, err := startProcess("rabbitmq-server", cmd, "Server startup complete")
	if err != nil {
		epmd.stop()
		return nil, err
	}
	return []*process{epmd, broker}, nil
}

// withoutRabbitMQEnv drops the variables that would point RabbitMQ or
// Erlang at the machine's files or ports.
func withoutRabbitMQEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "ERL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
