package protocol

import "strings"

// The checks below accept the common, plainly valid forms of values the
// operator validates on every device message (label keys and values,
// rollout names, firmware versions) without the regular expressions and
// allocations of the general validators. Each reports true only for values
// its general validator accepts too; false means "not sure", and the
// general validator decides, with its error message. They never widen what
// is accepted: FuzzFastChecks compares them with the general validators.

// isLabelName reports whether s matches the Kubernetes label name syntax
// without a prefix: 1 to 63 bytes of A-Z a-z 0-9 '-' '_' '.', starting and
// ending with an alphanumeric character (k8s.io/apimachinery content
// package, labelKeyFmt). Such a string is a valid label key and a valid
// non-empty label value.
func isLabelName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isLabelKey reports whether s is a Kubernetes label key: a label name
// (isLabelName), optionally after a DNS subdomain prefix (isDNSSubdomain)
// and a '/' (IsQualifiedName).
func isLabelKey(s string) bool {
	if prefix, name, ok := strings.Cut(s, "/"); ok {
		return isDNSSubdomain(prefix) && isLabelName(name)
	}
	return isLabelName(s)
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// isDNSLabel reports whether s is a lowercase RFC 1123 label as Kubernetes
// checks it (IsDNS1123Label): 1 to 63 bytes of a-z 0-9 '-', starting and
// ending with a-z 0-9.
func isDNSLabel(s string) bool {
	return len(s) <= 63 && isDNSLabelShape(s)
}

// isDNSLabelShape is isDNSLabel without the length limit: one label of
// Kubernetes' dns1123SubdomainFmt, which limits only the whole subdomain.
func isDNSLabelShape(s string) bool {
	if len(s) == 0 || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is a lowercase RFC 1123 subdomain as
// Kubernetes checks it (IsDNS1123Subdomain): at most 253 bytes of labels
// (see isDNSLabelShape) joined by '.'.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for start := 0; ; {
		end := start
		for end < len(s) && s[end] != '.' {
			end++
		}
		if !isDNSLabelShape(s[start:end]) {
			return false
		}
		if end == len(s) {
			return true
		}
		start = end + 1
	}
}

// isPlainVersion reports whether s is a SemVer 2.0.0 version of the form
// MAJOR.MINOR.PATCH alone, each number 1 to MaxNumberDigits digits without
// a leading zero: a valid version by ValidVersion, at most 59 bytes long.
func isPlainVersion(s string) bool {
	for part := range 3 {
		n := 0
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n == 0 || n > MaxNumberDigits || (n > 1 && s[0] == '0') {
			return false
		}
		s = s[n:]
		if part < 2 {
			if len(s) == 0 || s[0] != '.' {
				return false
			}
			s = s[1:]
		}
	}
	return len(s) == 0
}
