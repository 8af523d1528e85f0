package mqtt_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldiot/herald/mqtt"
)

// scramServer is the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), for
// scripted-peer tests of enhanced authentication: feed it the client's
// Authentication Data and send back what it returns.
//
//	serverFirst, err := srv.first(connect.AuthData)   // AUTH, Continue Authentication
//	serverFinal, err := srv.final(auth.AuthData)      // CONNACK, Success
//
// It knows one user, derives its verifier from the password as given (no
// normalisation: tests choose the stored form), and may run any number of
// exchanges, one at a time; first starts a new one. Set salt, iterations or
// nonce before first to script a particular server.
type scramServer struct {
	user     string
	password string

	// salt and iterations are announced in the server-first-message.
	// newSCRAMServer sets a random 16-byte salt and 4096.
	salt       []byte
	iterations int
	// nonce, if set, is the server's part of the nonce; else it is random.
	nonce string

	// Of the exchange under way.
	clientFirstBare string
	serverFirst     string
	combinedNonce   string
	storedKey       []byte
	serverKey       []byte
}

// Failures of the server, for errors.Is. The server-error-value that final
// returns with errSCRAMInvalidProof is the one a real server sends.
var (
	errSCRAMMalformedClient = errors.New("scram server: malformed client message")
	errSCRAMUnknownUser     = errors.New("scram server: unknown user")
	errSCRAMInvalidProof    = errors.New("scram server: invalid client proof")
	errSCRAMNotStarted      = errors.New("scram server: client-final before client-first")
)

// newSCRAMServer returns a server that knows user with password.
func newSCRAMServer(user, password string) *scramServer {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt) // never fails since Go 1.24
	return &scramServer{user: user, password: password, salt: salt, iterations: 4096}
}

// first checks a client-first-message and returns the server-first-message
// "r=<client nonce + server nonce>,s=<salt>,i=<iterations>".
func (s *scramServer) first(clientFirst []byte) ([]byte, error) {
	s.clientFirstBare, s.serverFirst, s.combinedNonce = "", "", ""
	msg := string(clientFirst)

	// client-first-message = gs2-header client-first-message-bare, with
	// gs2-header = gs2-cbind-flag "," [authzid] "," (RFC 5802 section 7).
	// A client that asks for channel binding ("p=") is refused: this
	// server offers SCRAM-SHA-256 without -PLUS.
	if !strings.HasPrefix(msg, "n,") && !strings.HasPrefix(msg, "y,") {
		return nil, fmt.Errorf("%w: GS2 header %q: want channel binding flag n or y", errSCRAMMalformedClient, msg)
	}
	rest := msg[2:]
	comma := strings.IndexByte(rest, ',')
	if comma < 0 {
		return nil, fmt.Errorf("%w: GS2 header of %q does not end", errSCRAMMalformedClient, msg)
	}
	if comma > 0 && !strings.HasPrefix(rest, "a=") {
		return nil, fmt.Errorf("%w: authzid of %q", errSCRAMMalformedClient, msg)
	}
	bare := rest[comma+1:]

	// client-first-message-bare = [reserved-mext ","] username "," nonce
	// ["," extensions]
	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, fmt.Errorf("%w: mandatory extension %q", errSCRAMMalformedClient, attrs[0])
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, fmt.Errorf("%w: client-first-message-bare %q is not n=,r=", errSCRAMMalformedClient, bare)
	}
	user, err := scramUnescape(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	clientNonce := attrs[1][2:]
	if clientNonce == "" {
		return nil, fmt.Errorf("%w: empty client nonce", errSCRAMMalformedClient)
	}
	if user != s.user {
		return nil, fmt.Errorf("%w: %q", errSCRAMUnknownUser, user)
	}

	// The verifier a real server would have stored: StoredKey and
	// ServerKey (RFC 5802 section 3).
	salted, err := pbkdf2.Key(sha256.New, s.password, s.salt, s.iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("scram server: %w", err)
	}
	clientKey := scramServerHMAC(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	s.storedKey = stored[:]
	s.serverKey = scramServerHMAC(salted, "Server Key")

	serverNonce := s.nonce
	if serverNonce == "" {
		serverNonce = rand.Text()
	}
	s.clientFirstBare = bare
	s.combinedNonce = clientNonce + serverNonce
	s.serverFirst = "r=" + s.combinedNonce +
		",s=" + base64.StdEncoding.EncodeToString(s.salt) +
		",i=" + strconv.Itoa(s.iterations)
	return []byte(s.serverFirst), nil
}

// final verifies the proof of a client-final-message and returns the
// server-final-message "v=<server signature>". When the proof is wrong it
// returns errSCRAMInvalidProof together with "e=invalid-proof", the
// server-error a real server sends (RFC 5802 section 7), so that a
// script can forward it.
func (s *scramServer) final(clientFinal []byte) ([]byte, error) {
	if s.serverFirst == "" {
		return nil, errSCRAMNotStarted
	}
	defer func() { s.clientFirstBare, s.serverFirst, s.combinedNonce = "", "", "" }()
	msg := string(clientFinal)

	// client-final-message = client-final-message-without-proof "," proof,
	// and the proof is always last (RFC 5802 section 7).
	cut := strings.LastIndex(msg, ",p=")
	if cut < 0 {
		return nil, fmt.Errorf("%w: client-final-message %q has no proof", errSCRAMMalformedClient, msg)
	}
	withoutProof, proofText := msg[:cut], msg[cut+len(",p="):]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, fmt.Errorf("%w: client-final-message %q is not c=,r=,p=", errSCRAMMalformedClient, msg)
	}
	// c= is the base64 of the GS2 header; this server only accepts the
	// one without channel binding or authzid.
	if attrs[0] != "c=biws" && attrs[0] != "c=eSws" {
		return nil, fmt.Errorf("%w: channel binding %q", errSCRAMMalformedClient, attrs[0])
	}
	if attrs[1][2:] != s.combinedNonce {
		return nil, fmt.Errorf("%w: nonce %q is not the exchange's", errSCRAMMalformedClient, attrs[1][2:])
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return nil, fmt.Errorf("%w: proof %q", errSCRAMMalformedClient, proofText)
	}

	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	// ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
	// is right when H(ClientKey) is StoredKey (RFC 5802 section 3).
	clientKey := scramServerHMAC(s.storedKey, authMessage)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	got := sha256.Sum256(clientKey)
	if !hmac.Equal(got[:], s.storedKey) {
		return []byte("e=invalid-proof"), errSCRAMInvalidProof
	}
	signature := scramServerHMAC(s.serverKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(signature)), nil
}

// scramUnescape decodes a saslname: "=2C" is ',' and "=3D" is '='; any
// other '=' is an error (RFC 5802 section 5.1).
func scramUnescape(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty username", errSCRAMMalformedClient)
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == ',':
			return "", fmt.Errorf("%w: unescaped ',' in username %q", errSCRAMMalformedClient, name)
		case name[i] != '=':
			b.WriteByte(name[i])
		case strings.HasPrefix(name[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(name[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", fmt.Errorf("%w: bad escape in username %q", errSCRAMMalformedClient, name)
		}
	}
	return b.String(), nil
}

// scramServerHMAC returns HMAC-SHA-256(key, msg).
func scramServerHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramRun runs one exchange between client and server, as the AUTH
// packet flow carries it, and returns the first error and which side
// raised it.
func scramRun(ctx context.Context, client *mqtt.SCRAM, server *scramServer) (side string, err error) {
	clientFinal, side, err := scramProve(ctx, client, server)
	if err != nil {
		return side, err
	}
	serverFinal, err := server.final(clientFinal)
	if err != nil {
		return "server final", err
	}
	if err := client.Finish(ctx, serverFinal); err != nil {
		return "client Finish", err
	}
	return "", nil
}

// scramProve runs an exchange up to the client-final-message and returns
// it, or the first error and which side raised it.
func scramProve(ctx context.Context, client *mqtt.SCRAM, server *scramServer) (clientFinal []byte, side string, err error) {
	clientFirst, err := client.Start(ctx)
	if err != nil {
		return nil, "client Start", err
	}
	serverFirst, err := server.first(clientFirst)
	if err != nil {
		return nil, "server first", err
	}
	clientFinal, err = client.Continue(ctx, serverFirst)
	if err != nil {
		return nil, "client Continue", err
	}
	return clientFinal, "", nil
}

func TestSCRAMServerFullExchange(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ user, password string }{
		{"device-42", "correct horse battery staple"},
		{"a,b=c", "p=,w"},
		{"émile", "mot de passe é"},
	} {
		client := mqtt.NewSCRAMSHA256(tc.user, tc.password)
		server := newSCRAMServer(tc.user, tc.password)
		// Twice: a re-authentication reuses both sides.
		for i := range 2 {
			if side, err := scramRun(ctx, client, server); err != nil {
				t.Fatalf("%q exchange %d: %s: %v", tc.user, i, side, err)
			}
		}
	}
}

// The server re-derives its keys at every first: a new salt or iteration
// count between exchanges (a password change on the broker) must still
// authenticate a client whose keys were cached.
func TestSCRAMServerNewSalt(t *testing.T) {
	ctx := context.Background()
	client := mqtt.NewSCRAMSHA256("device", "pencil")
	server := newSCRAMServer("device", "pencil")
	if side, err := scramRun(ctx, client, server); err != nil {
		t.Fatalf("%s: %v", side, err)
	}
	server.salt = []byte("another salt")
	server.iterations = 5000
	if side, err := scramRun(ctx, client, server); err != nil {
		t.Fatalf("after a new salt: %s: %v", side, err)
	}
}

func TestSCRAMServerWrongPassword(t *testing.T) {
	client := mqtt.NewSCRAMSHA256("device", "wrong")
	server := newSCRAMServer("device", "right")
	clientFinal, side, err := scramProve(context.Background(), client, server)
	if err != nil {
		t.Fatalf("%s: %v", side, err)
	}
	serverFinal, err := server.final(clientFinal)
	if !errors.Is(err, errSCRAMInvalidProof) {
		t.Fatalf("server final: %v, want errSCRAMInvalidProof", err)
	}
	// Forwarded to the client, the server's error is reported as such.
	err = client.Finish(context.Background(), serverFinal)
	var serverErr *mqtt.SCRAMServerError
	if !errors.As(err, &serverErr) || serverErr.Value != "invalid-proof" {
		t.Fatalf("client Finish: %v, want server error invalid-proof", err)
	}
}

func TestSCRAMServerUnknownUser(t *testing.T) {
	side, err := scramRun(context.Background(), mqtt.NewSCRAMSHA256("mallory", "pencil"), newSCRAMServer("device", "pencil"))
	if side != "server first" || !errors.Is(err, errSCRAMUnknownUser) {
		t.Fatalf("%s: %v, want errSCRAMUnknownUser from server first", side, err)
	}
}

// The client prepares its password with PRECIS OpaqueString (NFC), so a
// decomposed password matches a verifier made from the composed form.
func TestSCRAMServerPasswordNormalised(t *testing.T) {
	side, err := scramRun(context.Background(), mqtt.NewSCRAMSHA256("device", "cafe\u0301"), newSCRAMServer("device", "caf\u00e9"))
	if err != nil {
		t.Fatalf("%s: %v", side, err)
	}
}

// A server that announces fewer iterations than RFC 7677 section 4 asks
// for is refused before the client computes a proof.
func TestSCRAMServerLowIterations(t *testing.T) {
	server := newSCRAMServer("device", "pencil")
	server.iterations = 1024
	side, err := scramRun(context.Background(), mqtt.NewSCRAMSHA256("device", "pencil"), server)
	if side != "client Continue" || !errors.Is(err, mqtt.ErrSCRAMIterations) {
		t.Fatalf("%s: %v, want ErrSCRAMIterations from client Continue", side, err)
	}
}

// A server that does not know the password (it has the wrong verifier, as
// an impersonator would) is caught by the client at Finish even if it
// reports success.
func TestSCRAMServerImpersonator(t *testing.T) {
	client := mqtt.NewSCRAMSHA256("device", "pencil")
	server := newSCRAMServer("device", "not the password")
	clientFinal, side, err := scramProve(context.Background(), client, server)
	if err != nil {
		t.Fatalf("%s: %v", side, err)
	}
	// It signs the right AuthMessage with the ServerKey of its own
	// verifier, and claims success.
	withoutProof := clientFinal[:bytes.LastIndex(clientFinal, []byte(",p="))]
	authMessage := server.clientFirstBare + "," + server.serverFirst + "," + string(withoutProof)
	forged := "v=" + base64.StdEncoding.EncodeToString(scramServerHMAC(server.serverKey, authMessage))
	if err := client.Finish(context.Background(), []byte(forged)); !errors.Is(err, mqtt.ErrSCRAMServerSignature) {
		t.Fatalf("client Finish: %v, want ErrSCRAMServerSignature", err)
	}
}

// The server reproduces RFC 7677 section 3 when given its salt and nonce:
// an independent check of the server against the published exchange.
func TestSCRAMServerRFC7677(t *testing.T) {
	server := newSCRAMServer("user", "pencil")
	server.salt, _ = base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	server.nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	serverFirst, err := server.first([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(serverFirst) != want {
		t.Fatalf("server-first = %q, want %q", serverFirst, want)
	}
	serverFinal, err := server.final([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(serverFinal) != want {
		t.Fatalf("server-final = %q, want %q", serverFinal, want)
	}
}

func TestSCRAMServerMalformedClient(t *testing.T) {
	for _, msg := range []string{
		"",
		"p=tls-unique,,n=user,r=abc",
		"n,,r=abc,n=user",
		"n,,n=user",
		"n,,n=,r=abc",
		"n,,n=us=er,r=abc",
		"n,,n=user,r=",
		"n,,m=ext,n=user,r=abc",
		"n,x,n=user,r=abc",
	} {
		if _, err := newSCRAMServer("user", "pencil").first([]byte(msg)); !errors.Is(err, errSCRAMMalformedClient) {
			t.Errorf("first(%q): %v, want errSCRAMMalformedClient", msg, err)
		}
	}
	if _, err := newSCRAMServer("user", "pencil").final([]byte("c=biws,r=x,p=AAAA")); !errors.Is(err, errSCRAMNotStarted) {
		t.Errorf("final before first: %v", err)
	}
}
