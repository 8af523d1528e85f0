package protocol

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error this package returns for a message
// or topic that breaks the protocol, so that the operator can count them
// with a single errors.Is check. The more specific errors below wrap it and
// tell why, for logs and metrics.
var ErrMalformed = errors.New("malformed")

var (
	// ErrTooLarge: the payload is larger than MaxPayloadSize.
	ErrTooLarge = fmt.Errorf("%w: payload larger than %d bytes", ErrMalformed, MaxPayloadSize)
	// ErrSyntax: the payload is not one JSON object in UTF-8.
	ErrSyntax = fmt.Errorf("%w: not a JSON object in UTF-8", ErrMalformed)
	// ErrDuplicateField: a member name occurs twice in one object. JSON
	// parsers disagree on which one wins (RFC 8259 §4), so neither does.
	ErrDuplicateField = fmt.Errorf("%w: duplicate member", ErrMalformed)
	// ErrVersion: "v" is not a protocol version this package speaks.
	ErrVersion = fmt.Errorf("%w: unsupported protocol version", ErrMalformed)
	// ErrMissingField: a required member is absent, null or empty.
	ErrMissingField = fmt.Errorf("%w: missing required member", ErrMalformed)
	// ErrInvalidField: a member has the wrong JSON type or an invalid value.
	ErrInvalidField = fmt.Errorf("%w: invalid member", ErrMalformed)
	// ErrInvalidSegment: a device ID or model name is not a valid topic
	// segment (see ValidSegment).
	ErrInvalidSegment = fmt.Errorf("%w: invalid topic segment", ErrMalformed)
	// ErrTopic: a topic is not one of the protocol's topics under the root.
	ErrTopic = fmt.Errorf("%w: not a protocol topic", ErrMalformed)
)

// missing and invalid build the field errors, naming the member by its JSON
// path ("rollout.uid") so that a firmware engineer can find it.
func missing(path string) error {
	return fmt.Errorf("%w %q", ErrMissingField, path)
}

func invalid(path, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidField, path, fmt.Sprintf(format, args...))
}

// quote renders a value for an error message: quoted, so control characters
// are visible, and cut short, so a 16 KiB string does not flood a log.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
