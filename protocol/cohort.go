package protocol

import "fmt"

// Cohorts is the number of cohorts a fleet's devices are spread over. One
// cohort is one percent of the fleet, so a rollout wave of p percent is the
// cohorts 0 to p-1 and costs one notice per model and cohort, however many
// devices the fleet has.
const Cohorts = 100

// FNV-1a 32-bit parameters (http://www.isthe.com/chongo/tech/comp/fnv/).
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// Cohort returns the cohort of a device, 0 to 99: the FNV-1a 32-bit hash of
// the device ID's bytes, modulo 100. Devices compute it themselves to find
// their group notice topic, so the function is specified bit for bit (see
// docs/protocol.md for test vectors): it must stay the same forever, or
// devices would stop hearing their notices. FNV-1a is a few lines in any
// language, needs no tables and spreads short similar IDs ("sensor-0001",
// "sensor-0002") well; the modulo's bias is below 1e-7.
//
// The loop is written out rather than using hash/fnv so that the operator
// can compute cohorts of a large fleet without allocating.
func Cohort(deviceID string) int {
	h := uint32(fnvOffset32)
	for i := 0; i < len(deviceID); i++ {
		h ^= uint32(deviceID[i])
		h *= fnvPrime32
	}
	return int(h % Cohorts)
}

// cohortSegments holds the topic levels "00" to "99", so that building a
// topic does not format numbers.
var cohortSegments = func() (s [Cohorts]string) {
	for c := range s {
		s[c] = fmt.Sprintf("%02d", c)
	}
	return s
}()

// CohortSegment renders a cohort as its topic level: always two digits,
// "00" to "99", so that topics sort and read the same everywhere. It panics
// when c is not a cohort (0 to 99), as indexing out of range would: only a
// programming error produces such a value.
func CohortSegment(c int) string {
	if c < 0 || c >= Cohorts {
		panic(fmt.Sprintf("protocol: cohort %d outside 0-%d", c, Cohorts-1))
	}
	return cohortSegments[c]
}

// ParseCohortSegment reads a cohort topic level: exactly two ASCII digits.
func ParseCohortSegment(s string) (int, error) {
	if len(s) != 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, fmt.Errorf("%w: cohort %s is not two digits 00-99", ErrTopic, quote(s))
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), nil
}
