package main

import (
	"errors"
	"strings"

	"github.com/spf13/pflag"
)

// connFlags are the connection flags mosquitto_pub and mosquitto_sub share.
type connFlags struct {
	host      string
	port      int
	url       string // -L mqtt(s)://[user[:pass]@]host[:port]/topic
	id        string
	idPrefix  string
	username  string
	password  string
	keepAlive int
	// persistent is -c: no clean session, and under v5 a session that
	// outlives the connection.
	persistent    bool
	sessionExpiry string // -x: seconds, or -1/4294967295/∞ for never
	version       string
	qos           int

	cafile, capath string
	cert, key      string
	insecure       bool
	tlsVersion     string
	useOSCerts     bool

	willTopic   string
	willPayload string
	willQoS     int
	willRetain  bool

	debug   bool
	quiet   bool
	nodelay bool

	// props are the -D/--property groups, taken out of the arguments before
	// flag parsing because they hold three or four words each.
	props []property
}

// register adds the shared flags to fs with mosquitto's names. -h is the
// host, so --help is defined here without a shorthand, before cobra would
// add its own with -h.
func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.Bool("help", false, "display this message")
	fs.StringVarP(&f.host, "host", "h", "localhost", "MQTT host to connect to")
	fs.IntVarP(&f.port, "port", "p", 1883, "network port to connect to (8883 with TLS)")
	fs.StringVarP(&f.url, "url", "L", "", "user, password, host, port and topic as mqtt(s)://[username[:password]@]host[:port]/topic")
	fs.StringVarP(&f.id, "id", "i", "", "client id (default: assigned by a v5 broker, or empty under 3.1.1)")
	fs.StringVarP(&f.idPrefix, "id-prefix", "I", "", "client id prefix; the process id is appended")
	fs.StringVarP(&f.username, "username", "u", "", "user name")
	fs.StringVarP(&f.password, "pw", "P", "", "password")
	fs.IntVarP(&f.keepAlive, "keepalive", "k", 60, "keepalive in seconds (5-65535)")
	fs.BoolVarP(&f.persistent, "disable-clean-session", "c", false, "persistent session: keep subscriptions and queued messages across connections")
	fs.StringVarP(&f.sessionExpiry, "session-expiry-interval", "x", "", "v5 session expiry in seconds; -1, 4294967295 or ∞ for never")
	fs.StringVarP(&f.version, "protocol-version", "V", "311", "MQTT version: 5, 311, mqttv5 or mqttv311")
	fs.IntVarP(&f.qos, "qos", "q", 0, "quality of service, 0, 1 or 2")

	fs.StringVar(&f.cafile, "cafile", "", "PEM file of trusted CA certificates; enables TLS")
	fs.StringVar(&f.capath, "capath", "", "directory of PEM CA certificates; enables TLS")
	fs.StringVar(&f.cert, "cert", "", "PEM client certificate")
	fs.StringVar(&f.key, "key", "", "PEM client private key")
	fs.BoolVar(&f.insecure, "insecure", false, "do not check that the server certificate's name matches the host")
	fs.StringVar(&f.tlsVersion, "tls-version", "", "TLS version: tlsv1.3, tlsv1.2 or tlsv1.1")
	fs.BoolVar(&f.useOSCerts, "tls-use-os-certs", false, "trust the operating system's CA certificates; enables TLS")

	fs.StringVar(&f.willTopic, "will-topic", "", "topic of the client's will")
	fs.StringVar(&f.willPayload, "will-payload", "", "payload of the client's will")
	fs.IntVar(&f.willQoS, "will-qos", 0, "QoS of the client's will")
	fs.BoolVar(&f.willRetain, "will-retain", false, "retain the client's will")

	fs.BoolVarP(&f.debug, "debug", "d", false, "print a line for every packet sent and received")
	fs.BoolVar(&f.quiet, "quiet", false, "do not print runtime errors")
	fs.BoolVar(&f.nodelay, "nodelay", false, "disable Nagle's algorithm (always the case here)")
	// Registered so --help lists it; the groups are removed before parsing.
	fs.StringArrayP("property", "D", nil, "v5 property: -D command identifier value, or -D command user-property name value")
}

// errHelp means --help was given.
var errHelp = errors.New("help requested")

// parseFlags parses a subcommand's arguments into fs (cobra's own parsing
// is off for the subcommands). The -D groups are taken out first, since a
// group is three or four words; telling a -D group from a value that
// merely reads "-D" (as in `-m -D`) needs to know which flags take values.
func parseFlags(fs *pflag.FlagSet, args []string, f *connFlags) error {
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case arg == "-D" || arg == "--property":
			if i+2 >= len(args) || i+propertyWords(args[i+2]) >= len(args) {
				return usageErrorf("--property argument given but not enough arguments specified.")
			}
			n := propertyWords(args[i+2])
			p, err := parseProperty(args[i+1 : i+1+n])
			if err != nil {
				return err
			}
			f.props = append(f.props, p)
			i += n
		case takesValue(fs, arg) && i+1 < len(args):
			rest = append(rest, arg, args[i+1])
			i++
		default:
			rest = append(rest, arg)
		}
	}
	if err := fs.Parse(rest); err != nil {
		return usageErrorf("%v", err)
	}
	if help, _ := fs.GetBool("help"); help {
		return errHelp
	}
	if fs.Changed("property") {
		return usageErrorf("--property argument given but not enough arguments specified.")
	}
	if fs.NArg() > 0 {
		return usageErrorf("Unknown option '%s'.", fs.Arg(0))
	}
	return nil
}

// takesValue reports whether arg is a flag whose value is the next argument.
func takesValue(fs *pflag.FlagSet, arg string) bool {
	var fl *pflag.Flag
	switch {
	case strings.HasPrefix(arg, "--") && !strings.Contains(arg, "="):
		fl = fs.Lookup(arg[2:])
	case len(arg) == 2 && arg[0] == '-':
		fl = fs.ShorthandLookup(arg[1:])
	}
	return fl != nil && fl.NoOptDefVal == ""
}
