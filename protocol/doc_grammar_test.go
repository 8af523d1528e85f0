package protocol

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The grammars of docs/protocol.md are ABNF (RFC 5234, with RFC 7405's
// %s"..." for case-sensitive strings) in blocks marked
// <!-- grammar: name -->. These tests turn each into a regular expression
// and hold it, the JSON Schema's pattern and the parser to the same
// language.

// abnf translates the rules of an ABNF block into regular expressions.
type abnf struct {
	rules map[string]string // rule name, lower case → its elements
	prose map[string]string // rule name → regexp standing for its prose value
	toks  []string
	pos   int
	depth int
}

var abnfTokenRE = regexp.MustCompile(`^(?:%s"[^"]*"|"[^"]*"|%x[0-9A-Fa-f]+|<[^>]*>|[0-9]*\*[0-9]*|[0-9]+|[A-Za-z][A-Za-z0-9-]*|[()\[\]/])`)

// grammarRegexp returns an anchored regular expression for rule start of
// the ABNF in body. prose maps the rules whose value is prose (<...>) to a
// regular expression.
func grammarRegexp(t *testing.T, body, start string, prose map[string]string) *regexp.Regexp {
	t.Helper()
	g := &abnf{rules: map[string]string{}, prose: prose}
	var last string
	for _, line := range strings.Split(body, "\n") {
		line = stripComment(line)
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // a continuation line
			g.rules[last] += " " + line
			continue
		}
		name, rhs, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("grammar line %q is not a rule", line)
		}
		last = strings.ToLower(strings.TrimSpace(name))
		g.rules[last] = rhs
	}
	re, err := g.rule(start)
	if err != nil {
		t.Fatalf("grammar %s: %v", start, err)
	}
	return regexp.MustCompile("^(?:" + re + ")$")
}

// stripComment drops a ";" comment, which may not start inside a string.
func stripComment(line string) string {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				return line[:i]
			}
		}
	}
	return line
}

func (g *abnf) rule(name string) (string, error) {
	switch strings.ToLower(name) {
	case "digit":
		return "[0-9]", nil
	case "alpha":
		return "[A-Za-z]", nil
	case "sp":
		return " ", nil
	}
	rhs, ok := g.rules[strings.ToLower(name)]
	if !ok {
		return "", fmt.Errorf("no rule %s", name)
	}
	if g.depth++; g.depth > 20 {
		return "", fmt.Errorf("rule %s is recursive", name)
	}
	defer func() { g.depth-- }()
	saved, savedPos := g.toks, g.pos
	defer func() { g.toks, g.pos = saved, savedPos }()
	g.toks, g.pos = nil, 0
	for rest := strings.TrimSpace(rhs); rest != ""; rest = strings.TrimSpace(rest) {
		tok := abnfTokenRE.FindString(rest)
		if tok == "" {
			return "", fmt.Errorf("rule %s: cannot read %q", name, rest)
		}
		g.toks = append(g.toks, tok)
		rest = rest[len(tok):]
	}
	re, err := g.alternation(name)
	if err == nil && g.pos != len(g.toks) {
		err = fmt.Errorf("rule %s: unexpected %q", name, g.toks[g.pos])
	}
	return re, err
}

func (g *abnf) peek() string {
	if g.pos < len(g.toks) {
		return g.toks[g.pos]
	}
	return ""
}

func (g *abnf) alternation(name string) (string, error) {
	var alts []string
	for {
		c, err := g.concatenation(name)
		if err != nil {
			return "", err
		}
		alts = append(alts, c)
		if g.peek() != "/" {
			break
		}
		g.pos++
	}
	return "(?:" + strings.Join(alts, "|") + ")", nil
}

func (g *abnf) concatenation(name string) (string, error) {
	var out string
	for {
		switch g.peek() {
		case "", "/", ")", "]":
			if out == "" {
				return "", fmt.Errorf("rule %s: empty element", name)
			}
			return out, nil
		}
		r, err := g.repetition(name)
		if err != nil {
			return "", err
		}
		out += r
	}
}

var ruleNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

var repeatRE = regexp.MustCompile(`^([0-9]*)(\*?)([0-9]*)$`)

func (g *abnf) repetition(name string) (string, error) {
	rep := ""
	if m := repeatRE.FindStringSubmatch(g.peek()); m != nil && g.peek() != "" {
		g.pos++
		switch {
		case m[2] == "":
			rep = "{" + m[1] + "}"
		case m[1] == "" && m[3] == "":
			rep = "*"
		default:
			lo := m[1]
			if lo == "" {
				lo = "0"
			}
			rep = "{" + lo + "," + m[3] + "}"
		}
	}
	e, err := g.element(name)
	if err != nil {
		return "", err
	}
	return "(?:" + e + ")" + rep, nil
}

func (g *abnf) element(name string) (string, error) {
	tok := g.peek()
	g.pos++
	switch {
	case tok == "(" || tok == "[":
		inner, err := g.alternation(name)
		if err != nil {
			return "", err
		}
		closing := map[string]string{"(": ")", "[": "]"}[tok]
		if g.peek() != closing {
			return "", fmt.Errorf("rule %s: %s without %s", name, tok, closing)
		}
		g.pos++
		if tok == "[" {
			return "(?:" + inner + ")?", nil
		}
		return inner, nil
	case strings.HasPrefix(tok, `%s"`):
		return regexp.QuoteMeta(tok[3 : len(tok)-1]), nil
	case strings.HasPrefix(tok, `"`):
		// RFC 5234 §2.3: a quoted string is case-insensitive.
		s := regexp.QuoteMeta(tok[1 : len(tok)-1])
		if strings.ToLower(s) != strings.ToUpper(s) {
			s = "(?i:" + s + ")"
		}
		return s, nil
	case strings.HasPrefix(tok, "%x"):
		c, err := strconv.ParseUint(tok[2:], 16, 8)
		if err != nil {
			return "", fmt.Errorf("rule %s: %s: %v", name, tok, err)
		}
		return regexp.QuoteMeta(string(rune(c))), nil
	case strings.HasPrefix(tok, "<"):
		re, ok := g.prose[strings.ToLower(name)]
		if !ok {
			return "", fmt.Errorf("rule %s is prose, %s, and the test has no pattern for it", name, tok)
		}
		return re, nil
	case ruleNameRE.MatchString(tok):
		return g.rule(tok)
	}
	return "", fmt.Errorf("rule %s: unexpected %q", name, tok)
}

// docGrammar returns the body of the grammar block named name.
func docGrammar(t *testing.T, name string) string {
	t.Helper()
	for _, b := range blocksOf(t, "grammar") {
		if b.arg == name {
			return b.body
		}
	}
	t.Fatalf("%s has no grammar %s", docPath, name)
	return ""
}

// constraintCases are inputs for the constraint grammar, valid and not:
// spaces in every place, the operators, versions at their limits.
var constraintCases = []string{
	">=1.2.0, <2.0.0", ">=1.2.0,<2.0.0", " >= 1.2.0 , < 2.0.0 ", "  >=1.2.0", ">=1.2.0  ", " >=1.2.0 ",
	"<1.4.0 || >=1.5.0, <2.0.0", "<1.4.0||>=1.5.0", "<1.4.0 ||>=1.5.0", "<1.4.0|| >=1.5.0", " <1.4.0 || >=1.5.0 ",
	"=1.0.0", "= 1.0.0", "!=1.0.0-rc.1", "<=2.0.0-0", ">0.0.0", "<9999999999999999999.0.0",
	"<10000000000000000000.0.0", ">=1.0.0-9999999999999999999", ">=1.0.0-10000000000000000000", ">=1.0.0-a10000000000000000000",
	">=1.0.0-" + strings.Repeat("a", 100), "",
	" ", "1.0.0", ">=1.2", ">=v1.2.0", "^1.2.0", "~1.2.0", "1.2.x", ">=1.2.x", "1.2.0 - 1.4.0", "*",
	">=1.2.0 <2.0.0", ">=1.2.0,", ",>=1.2.0", ">=1.2.0,,<2.0.0", ">=1.2.0 , , <2.0.0", "||=1.0.0", "=1.0.0||",
	"=1.0.0 || || =2.0.0", "=1.0.0 | | =2.0.0", "=1.0.0|||=2.0.0", "=>1.0.0", "==1.0.0", "<>1.0.0", "> =1.0.0", "! =1.0.0",
	">=1.0.0+b", ">=1.0.0+", ">=1.0.0\t", "\t>=1.0.0", ">=\t1.0.0", ">=1.0.0,\t<2.0.0", ">=01.0.0", ">=1.0.0-01",
	">=1.0.0-", ">=1.0.0-a..b", ">=1.0.0 -rc.1", ">= 1 .0.0", ">=1.0.0\n", ">=1.0.0\u00a0", "＞=1.0.0",
	">=1.0.0, " + strings.Repeat("!=1.0.1, ", 26) + "<2.0.0",
	">=1.0.0, " + strings.Repeat("!=1.0.1, ", 27) + "<2.0.0",
}

// TestDocConstraintGrammar holds the grammar of §5.1, the notice schema's
// constraint pattern and ParseConstraint to one language.
func TestDocConstraintGrammar(t *testing.T) {
	defs := docSchemas(t)["notice"].Defs
	version := defs["version"].Pattern
	const build = `(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`
	if !strings.HasSuffix(version, build) {
		t.Fatalf("$defs/version pattern %q does not end in the build metadata %q", version, build)
	}
	noBuild := strings.TrimPrefix(strings.TrimSuffix(version, build), "^")
	grammar := grammarRegexp(t, docGrammar(t, "constraint"), "constraint", map[string]string{"version": noBuild})
	d := defs["constraint"]
	schema := regexp.MustCompile(d.Pattern)
	accepted := 0
	for _, s := range constraintCases {
		_, err := ParseConstraint(s)
		code := err == nil
		inGrammar := grammar.MatchString(s) && len(s) <= MaxConstraintLength
		inSchema := schema.MatchString(s) && len(s) <= d.MaxLength
		if code != inGrammar || code != inSchema {
			t.Errorf("%q: ParseConstraint %v (%v), the grammar of §5.1 %v, the schema %v", s, code, err, inGrammar, inSchema)
		}
		if code {
			accepted++
		}
	}
	if accepted < 15 || accepted > len(constraintCases)-30 {
		t.Errorf("%d of %d cases are valid: the list no longer tests both sides", accepted, len(constraintCases))
	}
	if d.MaxLength != MaxConstraintLength {
		t.Errorf("$defs/constraint maxLength %d, code %d", d.MaxLength, MaxConstraintLength)
	}
}

// TestDocTimeGrammar holds the date-time grammar of §5 and the schemas'
// time pattern to the parsers' profile of RFC 3339 (timeCases).
func TestDocTimeGrammar(t *testing.T) {
	grammar := grammarRegexp(t, docGrammar(t, "date-time"), "date-time", nil)
	d, ok := docSchemas(t)["notice"].Defs["time"]
	if !ok {
		t.Fatal("the notice schema has no $defs/time")
	}
	schema := regexp.MustCompile(d.Pattern)
	for _, tc := range timeCases {
		_, err := ParsePresence([]byte(`{"v":1,"state":"online","ts":"` + tc.in + `"}`))
		if ok := err == nil; ok != tc.ok {
			t.Errorf("%q: parsed %v, want %v", tc.in, ok, tc.ok)
		}
		// The grammar leaves the ranges of numbers to its prose; the
		// pattern states them, and "format": "date-time" the calendar.
		if tc.ok && !grammar.MatchString(tc.in) {
			t.Errorf("%q: valid, but outside the grammar of §5", tc.in)
		}
		if inSchema := schema.MatchString(tc.in) && dayExists(tc.in); inSchema != tc.ok {
			t.Errorf("%q: the schema says %v, the parsers %v", tc.in, inSchema, tc.ok)
		}
	}
}

// dayExists reports whether the date a date-time starts with is a day of
// the Gregorian calendar, what JSON Schema's date-time format adds to the
// pattern.
func dayExists(s string) bool {
	if len(s) < 10 {
		return false
	}
	y, err1 := strconv.Atoi(s[0:4])
	m, err2 := strconv.Atoi(s[5:7])
	d, err3 := strconv.Atoi(s[8:10])
	if err1 != nil || err2 != nil || err3 != nil || m < 1 || m > 12 || d < 1 {
		return false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Day() == d
}

// TestGrammarRegexp checks the ABNF translation itself on RFC 5234's rules.
func TestGrammarRegexp(t *testing.T) {
	body := `r = 2DIGIT [ "." 1*3DIGIT ] ( "x" / %s"Y" / %x2D ) *" " ; a comment with "quotes"
s = r
  "!"`
	re := grammarRegexp(t, body, "s", nil)
	for in, want := range map[string]bool{"12x!": true, "12X!": true, "12.5Y  !": true, "12.123-!": true,
		"12y!": false, "1x!": false, "12.1234x!": false, "12.x!": false, "12x": false} {
		if re.MatchString(in) != want {
			t.Errorf("%q: %v, want %v (regexp %s)", in, !want, want, re)
		}
	}
}
