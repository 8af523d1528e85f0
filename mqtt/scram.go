package mqtt

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
	"sync"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// SCRAMSHA256Method is the Authentication Method of SCRAM-SHA-256, the
// SASL mechanism name registered by RFC 7677 section 3.
const SCRAMSHA256Method = "SCRAM-SHA-256"

// Bounds on the iteration count a server may announce in its
// server-first-message.
const (
	// RFC 7677 section 4: the iteration count SHOULD be at least 4096. A
	// client that accepts less lets a server impersonator (no TLS, or a
	// compromised broker) collect a proof that is cheap to attack offline
	// with a dictionary, so lower counts are refused rather than tolerated.
	scramMinIterations = 4096
	// PBKDF2 costs the client time in proportion to the count, so a hostile
	// server could pin a device's CPU with an absurd one. 1,000,000 leaves
	// room above current guidance for PBKDF2-HMAC-SHA-256 (600,000) and
	// costs well under a second on a server-class core.
	scramMaxIterations = 1_000_000
)

// Errors of a SCRAM exchange. Each is wrapped with the detail of the
// failure; test with errors.Is.
var (
	// ErrSCRAMCredentials means the username or password cannot be sent:
	// the username is empty, not UTF-8 or holds NUL; the password is
	// rejected by the PRECIS OpaqueString profile (empty, control
	// characters, unassigned code points).
	ErrSCRAMCredentials = errors.New("mqtt: scram: invalid credentials")
	// ErrSCRAMOutOfOrder means a step of the exchange was called out of
	// order, e.g. Continue before Start, or a second challenge after the
	// client-final-message.
	ErrSCRAMOutOfOrder = errors.New("mqtt: scram: exchange step out of order")
	// ErrSCRAMMalformed means a server message does not follow the grammar
	// of RFC 5802 section 7.
	ErrSCRAMMalformed = errors.New("mqtt: scram: malformed server message")
	// ErrSCRAMExtension means the server sent the reserved mandatory
	// extension attribute "m", which RFC 5802 section 5.1 requires the
	// client to refuse.
	ErrSCRAMExtension = errors.New("mqtt: scram: server requires an unsupported mandatory extension")
	// ErrSCRAMNonce means the server's nonce does not begin with the nonce
	// the client sent (RFC 5802 section 5.1): the answer is not to this
	// exchange.
	ErrSCRAMNonce = errors.New("mqtt: scram: server nonce does not extend the client nonce")
	// ErrSCRAMIterations means the server's iteration count is below the
	// minimum of RFC 7677 section 4 (4096) or above the bound this client
	// accepts (1,000,000).
	ErrSCRAMIterations = errors.New("mqtt: scram: iteration count out of bounds")
	// ErrSCRAMServerSignature means the server-final-message does not carry
	// the signature that proves the server knows the password's ServerKey
	// (RFC 5802 section 3): the server is not who it claims to be.
	ErrSCRAMServerSignature = errors.New("mqtt: scram: server signature does not verify")
)

// SCRAMServerError is a server-error ("e=") attribute sent by the server in
// place of a normal reply (RFC 5802 section 7), e.g. "invalid-proof" or
// "unknown-user".
type SCRAMServerError struct {
	// Value is the server-error-value as sent.
	Value string
}

func (e *SCRAMServerError) Error() string {
	return fmt.Sprintf("mqtt: scram: server error %q", scramTruncate(e.Value))
}

// scramStep is where a SCRAM value is in its exchange.
type scramStep uint8

const (
	scramIdle   scramStep = iota // no exchange under way: Start is next
	scramFirst                   // client-first sent: Continue is next
	scramProved                  // client-final sent: Finish is next
)

// scramGS2Header is the GS2 header of every client-first-message: "n"
// because this client does not support channel binding, and no authzid
// (RFC 5802 section 7).
const scramGS2Header = "n,,"

// scramChannelBinding is the "c=" value of the client-final-message: the
// base64 of the GS2 header, since "n" carries no channel binding data
// (RFC 5802 section 7: "biws" is base64 of "n,,").
var scramChannelBinding = base64.StdEncoding.EncodeToString([]byte(scramGS2Header))

// scramUsernameEscaper encodes the two characters that cannot appear in a
// saslname as RFC 5802 section 5.1 requires.
var scramUsernameEscaper = strings.NewReplacer("=", "=3D", ",", "=2C")

// SCRAM is a client of the SCRAM-SHA-256 mechanism (RFC 5802 with SHA-256
// per RFC 7677) that implements Authenticator, for MQTT 5.0 enhanced
// authentication. It proves knowledge of the password without sending it,
// and makes the server prove that it holds the password's verifier: Finish
// fails unless the server-final-message carries the right signature.
//
// The password is prepared with the PRECIS OpaqueString profile (RFC 8265
// section 4.2), the successor of the SASLprep that RFC 5802 names; for a
// printable ASCII password it changes nothing. The username is sent as
// given (only ',' and '=' are escaped), since brokers compare it byte for
// byte with the MQTT user name.
//
// A SCRAM may be used for any number of exchanges (every reconnect and
// re-authentication calls Start again), one at a time: give each Client its
// own. It keeps the keys derived for the last salt and iteration count, so
// a re-authentication against the same server skips the PBKDF2 cost.
// Channel binding (SCRAM-SHA-256-PLUS) is not supported.
type SCRAM struct {
	username string
	password string

	// fixedNonce replaces the random client nonce when set, so that tests
	// can reproduce published exchanges.
	fixedNonce string

	mu   sync.Mutex
	step scramStep
	// clientNonce and clientFirstBare are of the exchange under way.
	clientNonce     string
	clientFirstBare string
	// serverSignature is what Finish expects to receive.
	serverSignature []byte

	// The keys derived from the password for keySalt and keyIterations,
	// kept across exchanges to avoid PBKDF2's cost, as RFC 7677 section 4
	// suggests: servers announce the same salt and count again.
	keySalt       []byte
	keyIterations int
	clientKey     []byte
	serverKey     []byte
}

// NewSCRAMSHA256 returns an Authenticator that logs in as username with
// password under SCRAM-SHA-256. Invalid credentials are reported by Start,
// wrapped in ErrSCRAMCredentials.
func NewSCRAMSHA256(username, password string) *SCRAM {
	return &SCRAM{username: username, password: password}
}

// String names the mechanism and user, never the password, so that a
// logged Options value does not leak it.
func (s *SCRAM) String() string {
	return SCRAMSHA256Method + "(" + s.username + ")"
}

// GoString is String, for the same reason, under %#v.
func (s *SCRAM) GoString() string { return s.String() }

// Method returns "SCRAM-SHA-256".
func (s *SCRAM) Method() string { return SCRAMSHA256Method }

// Start begins a new exchange, abandoning any exchange under way, and
// returns the client-first-message "n,,n=<user>,r=<nonce>".
func (s *SCRAM) Start(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mqtt: scram: %w", err)
	}
	// saslname = 1*(value-safe-char / "=2C" / "=3D"), where
	// value-safe-char is any UTF-8 character but NUL, ',' and '='
	// (RFC 5802 section 7).
	if s.username == "" {
		return nil, fmt.Errorf("%w: empty username", ErrSCRAMCredentials)
	}
	if !utf8.ValidString(s.username) || strings.IndexByte(s.username, 0) >= 0 {
		return nil, fmt.Errorf("%w: username is not UTF-8 without NUL", ErrSCRAMCredentials)
	}
	// The prepared password is not kept: preparing it is cheap, and a
	// failure must be reported by every Start, not only the first.
	if _, err := scramPreparePassword(s.password); err != nil {
		return nil, err
	}
	nonce := s.fixedNonce
	if nonce == "" {
		// 128 random bits in base32: printable and free of ',' as the
		// nonce grammar requires (RFC 5802 section 7).
		nonce = rand.Text()
	}
	s.clientNonce = nonce
	s.clientFirstBare = "n=" + scramUsernameEscaper.Replace(s.username) + ",r=" + nonce
	s.step = scramFirst
	return []byte(scramGS2Header + s.clientFirstBare), nil
}

// Continue answers the server-first-message "r=<nonce>,s=<salt>,i=<count>"
// with the client-final-message "c=biws,r=<nonce>,p=<proof>". Any error
// ends the exchange: the next call must be Start.
func (s *SCRAM) Continue(ctx context.Context, challenge []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.step {
	case scramIdle:
		return nil, fmt.Errorf("%w: challenge before Start", ErrSCRAMOutOfOrder)
	case scramProved:
		s.reset()
		return nil, fmt.Errorf("%w: second challenge after the client-final-message", ErrSCRAMOutOfOrder)
	}
	final, err := s.answer(ctx, challenge)
	if err != nil {
		s.reset()
		return nil, err
	}
	s.step = scramProved
	return final, nil
}

// answer parses the server-first-message and computes the client proof and
// the server signature Finish will expect (RFC 5802 section 3).
func (s *SCRAM) answer(ctx context.Context, serverFirst []byte) ([]byte, error) {
	attrs, err := scramAttributes("server-first-message", serverFirst)
	if err != nil {
		return nil, err
	}
	// server-first-message = [reserved-mext ","] nonce "," salt ","
	//                        iteration-count ["," extensions]
	// (RFC 5802 section 7). A server-error is not in the grammar here, but
	// a server that sends one means it, so it is reported as such.
	switch attrs[0].name {
	case 'm':
		return nil, ErrSCRAMExtension
	case 'e':
		return nil, &SCRAMServerError{Value: attrs[0].value}
	}
	if len(attrs) < 3 || attrs[0].name != 'r' || attrs[1].name != 's' || attrs[2].name != 'i' {
		return nil, fmt.Errorf("%w: server-first-message is not r=,s=,i=", ErrSCRAMMalformed)
	}
	nonce, saltText, countText := attrs[0].value, attrs[1].value, attrs[2].value

	// The client MUST verify that the nonce begins with its own
	// (RFC 5802 section 5.1). The server's part may be empty by the
	// grammar (nonce = "r=" c-nonce [s-nonce]).
	if !strings.HasPrefix(nonce, s.clientNonce) {
		return nil, ErrSCRAMNonce
	}
	if !scramPrintable(nonce) {
		return nil, fmt.Errorf("%w: nonce has a character outside printable ASCII", ErrSCRAMMalformed)
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(saltText)
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("%w: salt is not non-empty base64", ErrSCRAMMalformed)
	}
	iterations, err := scramIterations(countText)
	if err != nil {
		return nil, err
	}

	// PBKDF2 is the one costly step: do not start it for a caller that
	// has already given up.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mqtt: scram: %w", err)
	}
	if err := s.deriveKeys(salt, iterations); err != nil {
		return nil, err
	}

	// AuthMessage := client-first-message-bare + "," +
	//                server-first-message + "," +
	//                client-final-message-without-proof
	// with the server's message exactly as received (RFC 5802 section 3).
	finalWithoutProof := "c=" + scramChannelBinding + ",r=" + nonce
	authMessage := make([]byte, 0, len(s.clientFirstBare)+len(serverFirst)+len(finalWithoutProof)+2)
	authMessage = append(authMessage, s.clientFirstBare...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, serverFirst...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, finalWithoutProof...)

	// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage)
	storedKey := sha256.Sum256(s.clientKey)
	proof := scramHMAC(storedKey[:], authMessage)
	for i := range proof {
		proof[i] ^= s.clientKey[i]
	}
	// ServerSignature := HMAC(ServerKey, AuthMessage)
	s.serverSignature = scramHMAC(s.serverKey, authMessage)

	return []byte(finalWithoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// deriveKeys sets ClientKey and ServerKey for salt and iterations, reusing
// those of the previous exchange when the server announced the same ones.
func (s *SCRAM) deriveKeys(salt []byte, iterations int) error {
	if s.clientKey != nil && iterations == s.keyIterations && bytes.Equal(salt, s.keySalt) {
		return nil
	}
	password, err := scramPreparePassword(s.password)
	if err != nil {
		return err
	}
	// SaltedPassword := Hi(Normalize(password), salt, i), where Hi is
	// PBKDF2 with HMAC-SHA-256 and a key as long as the hash
	// (RFC 5802 section 2.2, RFC 7677 section 3).
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return fmt.Errorf("mqtt: scram: deriving the salted password: %w", err)
	}
	s.keySalt = bytes.Clone(salt)
	s.keyIterations = iterations
	s.clientKey = scramHMAC(salted, []byte("Client Key"))
	s.serverKey = scramHMAC(salted, []byte("Server Key"))
	clear(salted)
	return nil
}

// Finish verifies the server-final-message "v=<signature>" carried by the
// CONNACK or AUTH packet that reports success. It fails if the message is
// absent, malformed, a server error, or carries a wrong signature. The
// exchange ends either way: the next call must be Start.
func (s *SCRAM) Finish(_ context.Context, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step != scramProved {
		// Success before the client-final-message means the server
		// accepted us without proving itself: refuse it too.
		s.reset()
		return fmt.Errorf("%w: success before the client-final-message", ErrSCRAMOutOfOrder)
	}
	want := s.serverSignature
	s.serverSignature = nil // so that reset leaves want alone
	s.reset()
	defer clear(want)

	attrs, err := scramAttributes("server-final-message", data)
	if err != nil {
		return err
	}
	// server-final-message = (server-error / verifier) ["," extensions]
	// (RFC 5802 section 7).
	switch attrs[0].name {
	case 'e':
		return &SCRAMServerError{Value: attrs[0].value}
	case 'v':
	default:
		return fmt.Errorf("%w: server-final-message is neither v= nor e=", ErrSCRAMMalformed)
	}
	got, err := base64.StdEncoding.Strict().DecodeString(attrs[0].value)
	if err != nil {
		return fmt.Errorf("%w: server signature is not base64", ErrSCRAMMalformed)
	}
	// Constant time, so that timing does not reveal how much of a forged
	// signature was right.
	if !hmac.Equal(got, want) {
		return ErrSCRAMServerSignature
	}
	return nil
}

// reset abandons the exchange under way. The derived keys are kept: they
// depend only on the password, salt and iteration count.
func (s *SCRAM) reset() {
	s.step = scramIdle
	s.clientNonce = ""
	s.clientFirstBare = ""
	clear(s.serverSignature)
	s.serverSignature = nil
}

// scramPreparePassword applies the PRECIS OpaqueString profile (RFC 8265
// section 4.2), which replaced SASLprep (RFC 4013, obsoleted by RFC 7613
// and then RFC 8265): non-ASCII spaces become ASCII space, the result is
// NFC-normalised, and empty strings and control characters are refused.
// The error never quotes the password.
func scramPreparePassword(password string) (string, error) {
	// precis would pass invalid bytes through; a server could not have
	// derived its verifier from them in any agreed way.
	if !utf8.ValidString(password) {
		return "", fmt.Errorf("%w: password is not UTF-8", ErrSCRAMCredentials)
	}
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("%w: password refused by PRECIS OpaqueString: %v", ErrSCRAMCredentials, err)
	}
	return prepared, nil
}

// scramAttribute is one attr-val of a SCRAM message: a letter, '=', and a
// value.
type scramAttribute struct {
	name  byte
	value string
}

// scramAttributes splits a SCRAM message into its attributes. It checks the
// shape every attribute shares (attr-val = ALPHA "=" value, RFC 5802
// section 7) and leaves the meaning of each to the caller. The result has
// at least one attribute. kind names the message in errors.
func scramAttributes(kind string, msg []byte) ([]scramAttribute, error) {
	if len(msg) == 0 {
		return nil, fmt.Errorf("%w: empty %s", ErrSCRAMMalformed, kind)
	}
	if !utf8.Valid(msg) {
		return nil, fmt.Errorf("%w: %s is not UTF-8", ErrSCRAMMalformed, kind)
	}
	parts := strings.Split(string(msg), ",")
	attrs := make([]scramAttribute, 0, len(parts))
	for _, p := range parts {
		if len(p) < 2 || p[1] != '=' || !scramAlpha(p[0]) {
			return nil, fmt.Errorf("%w: %s: %q is not an attribute=value pair", ErrSCRAMMalformed, kind, scramTruncate(p))
		}
		attrs = append(attrs, scramAttribute{name: p[0], value: p[2:]})
	}
	return attrs, nil
}

// scramIterations parses an iteration-count, posit-number = %x31-39 *DIGIT
// (RFC 5802 section 7), and checks it against the bounds this client
// accepts.
func scramIterations(text string) (int, error) {
	if text == "" || text[0] == '0' {
		return 0, fmt.Errorf("%w: iteration count %q is not a positive number", ErrSCRAMMalformed, scramTruncate(text))
	}
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			return 0, fmt.Errorf("%w: iteration count %q is not a positive number", ErrSCRAMMalformed, scramTruncate(text))
		}
	}
	// Any count longer than the bound's digits is out of bounds; checking
	// the length first keeps Atoi from overflowing.
	maxDigits := len(strconv.Itoa(scramMaxIterations))
	n := scramMaxIterations + 1
	if len(text) <= maxDigits {
		n, _ = strconv.Atoi(text)
	}
	if n < scramMinIterations || n > scramMaxIterations {
		return 0, fmt.Errorf("%w: server asks for %s iterations, want %d to %d",
			ErrSCRAMIterations, scramTruncate(text), scramMinIterations, scramMaxIterations)
	}
	return n, nil
}

// scramHMAC returns HMAC-SHA-256(key, msg).
func scramHMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramAlpha reports whether c is an ASCII letter.
func scramAlpha(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// scramPrintable reports whether s holds only the characters a nonce may:
// printable = %x21-2B / %x2D-7E, ASCII but ',' (RFC 5802 section 7).
func scramPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// scramTruncate shortens a server-supplied value for an error message, so
// that a hostile server cannot make errors arbitrarily long.
func scramTruncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
