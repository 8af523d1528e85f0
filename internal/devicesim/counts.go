package devicesim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ModelCount is how many devices of a fleet have one model, by version.
type ModelCount struct {
	Model    string
	Devices  int
	Versions map[string]int
}

// CountByModel counts specs by model, in the order models first appear,
// and by firmware version.
func CountByModel(specs []Spec) []ModelCount {
	var out []ModelCount
	index := map[string]int{}
	for _, s := range specs {
		i, ok := index[s.Model]
		if !ok {
			i = len(out)
			index[s.Model] = i
			out = append(out, ModelCount{Model: s.Model, Versions: map[string]int{}})
		}
		out[i].Devices++
		out[i].Versions[s.FirmwareVersion]++
	}
	return out
}

// FormatCounts renders counts largest first, ties by name, as
// "1.8.2 ×100, 1.9.1 ×80"; with limit > 0, the rest add up to "others ×n".
func FormatCounts(counts map[string]int, limit int) string {
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	rest := 0
	for i, k := range keys {
		if limit > 0 && i >= limit {
			rest += counts[k]
			continue
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("others ×%d", rest))
	}
	return strings.Join(parts, ", ")
}
