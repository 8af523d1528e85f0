package protocol

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// MaxConstraintLength bounds a version constraint, in bytes.
const MaxConstraintLength = 256

// comparisonOperators are the operators a constraint may use, two-byte ones
// first so that ">=" is not read as ">".
var comparisonOperators = []string{">=", "<=", "!=", ">", "<", "="}

// Constraint is a parsed currentVersion constraint, such as
// ">=1.2.0, <2.0.0". Devices evaluate these in firmware, so the grammar is
// deliberately smaller than what semver libraries accept (no "^", "~",
// "1.x" or hyphen ranges). It is the grammar of docs/protocol.md §5.1,
// which doc_test.go checks against the notice schema's pattern and this
// parser:
//
//	constraint  = OWS alternative *( OWS "||" OWS alternative ) OWS
//	alternative = comparison *( OWS "," OWS comparison )
//	comparison  = operator OWS version
//	operator    = ">=" / "<=" / "!=" / ">" / "<" / "="
//	OWS         = *" "
//
// Spaces are allowed wherever one token meets another, at the ends too, so
// that the simplest firmware parser, which splits at "||" and "," and trims
// spaces from each piece, is exact; that is what ParseConstraint does.
// version is a SemVer 2.0.0 version without build metadata (which has no
// place in precedence), with numbers of at most MaxNumberDigits digits; the
// 256 bytes of the whole constraint bound its length. A version satisfies
// the constraint when it
// satisfies every comparison of at least one alternative, comparing by
// SemVer 2.0.0 precedence alone: pre-releases are ordinary versions, so
// "<2.0.0" includes "2.0.0-rc.1", and build metadata is ignored.
type Constraint struct {
	text string
	c    *semver.Constraints
}

// ParseConstraint parses a constraint in the grammar above.
func ParseConstraint(s string) (*Constraint, error) {
	if len(s) > MaxConstraintLength {
		return nil, fmt.Errorf("version constraint: %d bytes, at most %d", len(s), MaxConstraintLength)
	}
	var canonical strings.Builder
	for i, alt := range strings.Split(s, "||") {
		if i > 0 {
			canonical.WriteString(" || ")
		}
		for j, cmp := range strings.Split(alt, ",") {
			if j > 0 {
				canonical.WriteString(", ")
			}
			op, v, err := parseComparison(strings.Trim(cmp, " "))
			if err != nil {
				return nil, fmt.Errorf("version constraint %s: %w", quote(s), err)
			}
			canonical.WriteString(op)
			canonical.WriteString(v)
		}
	}
	text := canonical.String()
	c, err := semver.NewConstraint(text)
	if err != nil { // the grammar is a subset of the library's: never
		return nil, fmt.Errorf("version constraint %s: %w", quote(s), err)
	}
	// The library leaves pre-releases out unless asked; the protocol orders
	// them by precedence like any version.
	c.IncludePrerelease = true
	return &Constraint{text: text, c: c}, nil
}

func parseComparison(s string) (op, version string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("empty comparison")
	}
	for _, o := range comparisonOperators {
		if strings.HasPrefix(s, o) {
			op = o
			break
		}
	}
	if op == "" {
		return "", "", fmt.Errorf("comparison %s has no operator (= != > >= < <=)", quote(s))
	}
	version = strings.TrimLeft(s[len(op):], " ")
	v, err := parseSemVer(version)
	if err != nil {
		return "", "", fmt.Errorf("comparison %s: %w", quote(s), err)
	}
	if v.Metadata() != "" {
		return "", "", fmt.Errorf("comparison %s: build metadata has no precedence; drop %s", quote(s), quote("+"+v.Metadata()))
	}
	return op, version, nil
}

// String returns the constraint in canonical form: one space after each
// ",", one space around each "||", none between operator and version.
func (c *Constraint) String() string { return c.text }

// Allows reports whether version (see ValidVersion) satisfies the constraint.
func (c *Constraint) Allows(version string) (bool, error) {
	v, err := parseVersion(version)
	if err != nil {
		return false, err
	}
	return c.c.Check(v), nil
}
