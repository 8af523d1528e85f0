package protocol

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Size limits. Each is a buffer size firmware can allocate up front; the
// tables in docs/protocol.md list them all.
const (
	// MaxPayloadSize bounds every payload of the protocol, so that a device
	// can receive into one fixed buffer and the operator's memory per message
	// is bounded whatever a device sends.
	MaxPayloadSize = 16 << 10
	// MaxSegmentLength bounds device IDs and model names, in bytes.
	MaxSegmentLength = 64
	// MaxVersionLength bounds firmware versions, in bytes.
	MaxVersionLength = 64

	maxTokenLength     = 64   // rollout UIDs, reasons, detail keys
	maxTextLength      = 64   // hardwareRevision
	maxMessageLength   = 1024 // status message: a Kubernetes Event note holds 1 KiB
	maxDetailValue     = 256  // status details values
	maxMapEntries      = 32   // inventory labels, status details
	maxModels          = 32   // notice models; as many as a FirmwareRollout allows
	maxArtifacts       = 8    // notice artifact mirrors
	maxURLLength       = 2048 // artifact and release notes URLs
	maxSignatureLength = 4096 // base64 characters
	maxSize            = 1<<53 - 1
)

// ValidSegment checks that s can be a device ID or a model name. Both are
// MQTT topic levels, so the rules keep them inert in every broker and tool
// that handles topics: 1 to 64 bytes of A-Z a-z 0-9 '.' '_' '-', not
// starting with '.'. That excludes the wildcards '+' and '#', the level
// separator '/', '$' (broker-reserved topics start with it), spaces,
// control characters and anything beyond ASCII, whose normalisation and
// case folding differ between implementations. A leading '.' is refused
// because "." and ".." mean something to tools that map topics to file
// names or URLs. Segments are case-sensitive, like MQTT topics.
func ValidSegment(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSegment)
	}
	if len(s) > MaxSegmentLength {
		return fmt.Errorf("%w %s: %d bytes, at most %d", ErrInvalidSegment, quote(s), len(s), MaxSegmentLength)
	}
	if i := invalidTokenByte(s); i >= 0 {
		return fmt.Errorf("%w %s: byte %d is %s; only A-Z a-z 0-9 '.' '_' '-' are allowed",
			ErrInvalidSegment, quote(s), i, describeByte(s[i]))
	}
	if s[0] == '.' {
		return fmt.Errorf("%w %s: must not start with '.'", ErrInvalidSegment, quote(s))
	}
	return nil
}

// invalidTokenByte returns the offset of the first byte of s outside
// A-Z a-z 0-9 '.' '_' '-', or -1.
func invalidTokenByte(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return i
		}
	}
	return -1
}

// describeByte names a refused byte so that the error says what went wrong,
// not only where.
func describeByte(c byte) string {
	switch {
	case c == '+' || c == '#':
		return fmt.Sprintf("%q, an MQTT wildcard", c)
	case c == '/':
		return `'/', the topic level separator`
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("the control character 0x%02x", c)
	case c >= utf8.RuneSelf:
		return fmt.Sprintf("0x%02x, not ASCII", c)
	default:
		return fmt.Sprintf("%q", c)
	}
}

// ValidVersion checks that s is a firmware version as the protocol carries
// it: a SemVer 2.0.0 version (https://semver.org) of at most 64 bytes, with
// no "v" prefix and no leading zeros, such as "1.4.2", "2.0.0-rc.1" or
// "1.4.2+build.77", whose numbers have at most 19 digits (see
// MaxNumberDigits). Strict syntax keeps comparisons identical in the
// operator and in firmware written in any language.
func ValidVersion(s string) error {
	if isPlainVersion(s) { // the common form, without the semver parser
		return nil
	}
	_, err := parseVersion(s)
	return err
}

// MaxNumberDigits bounds the numbers of a version: major, minor, patch and
// numeric pre-release identifiers. Nineteen digits always fit in an
// unsigned 64-bit integer, so firmware can compare them as integers; the
// bound is a digit count rather than 2^64-1 so that a JSON Schema pattern
// can state it exactly. (The semver library compares a numeric pre-release
// identifier it cannot parse as a uint64 as text, which would order it
// wrongly.)
const MaxNumberDigits = 19

func parseVersion(s string) (*semver.Version, error) {
	if len(s) > MaxVersionLength {
		return nil, fmt.Errorf("version %s: %d bytes, at most %d", quote(s), len(s), MaxVersionLength)
	}
	return parseSemVer(s)
}

// parseSemVer parses a SemVer 2.0.0 version, of any length, whose numbers
// have at most MaxNumberDigits digits.
func parseSemVer(s string) (*semver.Version, error) {
	v, err := semver.StrictNewVersion(s)
	if err == nil {
		err = checkNumberDigits(s)
	}
	if err != nil {
		return nil, fmt.Errorf("version %s is not a SemVer 2.0.0 version such as 1.4.2: %w", quote(s), err)
	}
	return v, nil
}

// checkNumberDigits checks the numbers of a version that
// semver.StrictNewVersion accepted. Build metadata has no numbers: its
// identifiers are text.
func checkNumberDigits(s string) error {
	s, _, _ = strings.Cut(s, "+")
	// Identifiers are separated by '.', and the core from the pre-release
	// by the first '-'; later '-' belong to identifiers, which makes those
	// identifiers text.
	core, pre, _ := strings.Cut(s, "-")
	for _, part := range [2]string{core, pre} {
		for id := range strings.SplitSeq(part, ".") {
			if len(id) > MaxNumberDigits && strings.Trim(id, "0123456789") == "" {
				return fmt.Errorf("the number %s has more than %d digits", id, MaxNumberDigits)
			}
		}
	}
	return nil
}

// The helpers below check one member each and name it by its JSON path.

func checkToken(path, s string, required bool) error {
	switch {
	case s == "" && required:
		return missing(path)
	case s == "":
		return nil
	case len(s) > maxTokenLength:
		return invalid(path, "%d bytes, at most %d", len(s), maxTokenLength)
	}
	if i := invalidTokenByte(s); i >= 0 {
		return invalid(path, "byte %d is %s; only A-Z a-z 0-9 '.' '_' '-' are allowed", i, describeByte(s[i]))
	}
	return nil
}

func checkSegment(path, s string) error {
	if s == "" {
		return missing(path)
	}
	if err := ValidSegment(s); err != nil {
		return fmt.Errorf("member %q: %w", path, err)
	}
	return nil
}

func checkVersion(path, s string) error {
	if s == "" {
		return missing(path)
	}
	if err := ValidVersion(s); err != nil {
		return invalid(path, "%v", err)
	}
	return nil
}

// checkText accepts printable UTF-8: no C0 or C1 control characters and no
// DEL, which would corrupt logs and terminals that show the value.
func checkText(path, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return missing(path)
	case len(s) > max:
		return invalid(path, "%d bytes, at most %d", len(s), max)
	case !utf8.ValidString(s):
		return invalid(path, "not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || (0x7f <= r && r <= 0x9f) {
			return invalid(path, "contains the control character U+%04X", r)
		}
	}
	return nil
}

// checkURL accepts absolute http and https URLs with a host and without
// user information: notices are readable by every device of the fleet, so
// credentials in a URL would leak to all of them.
func checkURL(path, s string, required bool) error {
	switch {
	case s == "" && required:
		return missing(path)
	case s == "":
		return nil
	case len(s) > maxURLLength:
		return invalid(path, "%d bytes, at most %d", len(s), maxURLLength)
	}
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return invalid(path, "must start with https:// or http://")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return invalid(path, "%v", err)
	case u.Host == "":
		return invalid(path, "no host")
	case u.User != nil:
		return invalid(path, "must not carry user information")
	}
	return nil
}

func checkSHA256(path, s string) error {
	if s == "" {
		return missing(path)
	}
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return invalid(path, "must be 64 lowercase hexadecimal characters")
	}
	return nil
}

// checkSignature accepts standard padded base64 (RFC 4648 §4) and nothing
// else: no line breaks, no URL alphabet, no missing padding.
func checkSignature(path, s string) error {
	switch {
	case s == "":
		return nil
	case len(s) > maxSignatureLength:
		return invalid(path, "%d characters, at most %d", len(s), maxSignatureLength)
	case strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "":
		return invalid(path, "not standard base64")
	}
	if _, err := base64.StdEncoding.Strict().DecodeString(s); err != nil {
		return invalid(path, "not standard base64: %v", err)
	}
	return nil
}

// checkLabels applies Kubernetes' label syntax, so that every label a device
// reports can be matched by a FirmwareRollout's label selector.
func checkLabels(path string, labels map[string]string) error {
	if len(labels) > maxMapEntries {
		return invalid(path, "%d entries, at most %d", len(labels), maxMapEntries)
	}
	for k, v := range labels {
		if isLabelKey(k) && (v == "" || isLabelName(v)) {
			continue // valid, without the regular expressions below
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return invalid(path, "key %s: %s", quote(k), strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return invalid(path+"."+k, "%s", strings.Join(errs, "; "))
		}
	}
	return nil
}

func checkDetails(path string, details map[string]string) error {
	if len(details) > maxMapEntries {
		return invalid(path, "%d entries, at most %d", len(details), maxMapEntries)
	}
	for k, v := range details {
		if err := checkToken(path+" key", k, true); err != nil {
			return err
		}
		if err := checkText(path+"."+k, v, maxDetailValue, false); err != nil {
			return err
		}
	}
	return nil
}

// checkRolloutName checks a FirmwareRollout's namespace and name with the
// Kubernetes rules for them.
func checkRolloutName(path, namespace, name string) error {
	if namespace == "" {
		return missing(path + ".namespace")
	}
	if isDNSLabel(namespace) && isDNSSubdomain(name) {
		return nil // valid, without the regular expressions below
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return invalid(path+".namespace", "%s", strings.Join(errs, "; "))
	}
	if name == "" {
		return missing(path + ".name")
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return invalid(path+".name", "%s", strings.Join(errs, "; "))
	}
	return nil
}

// checkTime refuses instants that RFC 3339 cannot write: JSON encoders fail
// on years outside 0000-9999, so such a value could be read but never sent.
func checkTime(path string, t time.Time, required bool) error {
	if t.IsZero() {
		if required {
			return missing(path)
		}
		return nil
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return invalid(path, "year %d is outside 0001-9999", y)
	}
	return nil
}
