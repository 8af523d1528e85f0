package helm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/mqttprom"
)

// targetLabels are the labels Prometheus adds to every series it scrapes
// from a Kubernetes service endpoint; queries may match on them too.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

// wantAlerts are the alerts the chart must ship.
var wantAlerts = []string{
	"HeraldRolloutPausedByFailurePolicy",
	"HeraldFleetBrokerDisconnected",
	"HeraldMalformedDeviceMessages",
	"HeraldFleetDeviceLimitReached",
	"HeraldFleetNotSynced",
}

// TestMonitoringUsesExportedMetrics: every metric the dashboard's panels
// and variables and the alerts' expressions select is one the running
// manager exports, matched only on labels it has (or Prometheus adds); the
// dashboard shows every herald_ metric; every alert explains itself.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	startManager(t)
	exported := exportedMetrics(t)
	objs := render(t, helmBinary(t), releases[1].rel)

	// The ConfigMap ships dashboards/herald.json as it is.
	cm := only(t, objs, "ConfigMap")
	board, _, _ := unstructured.NestedString(cm.Object, "data", "herald.json")
	file := readFile(t, filepath.Join(chartDir(t), "dashboards", "herald.json"))
	if !bytes.Equal([]byte(board), file) {
		t.Error("the dashboards ConfigMap's herald.json differs from charts/herald/dashboards/herald.json")
	}
	exprs, err := dashboardQueries(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(exprs) < 20 {
		t.Fatalf("found %d queries in the dashboard; the walk over its JSON is broken", len(exprs))
	}
	onBoard := make(map[string]bool)
	for _, q := range exprs {
		for _, name := range checkQuery(t, "dashboard", q, exported) {
			onBoard[name] = true
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "herald_") && !onBoard[name] {
			t.Errorf("the dashboard shows no panel for %s; add one to charts/herald/dashboards/herald.json", name)
		}
	}

	rule := only(t, objs, "PrometheusRule")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var alerts []string
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			alerts = append(alerts, name)
			expr, _ := r["expr"].(string)
			if len(checkQuery(t, "alert "+name, query{expr: expr}, exported)) == 0 {
				t.Errorf("alert %s: its expression selects no metric", name)
			}
			annotations, _ := r["annotations"].(map[string]any)
			for _, key := range []string{"summary", "description", "runbook"} {
				if s, _ := annotations[key].(string); strings.TrimSpace(s) == "" {
					t.Errorf("alert %s has no %s annotation", name, key)
				}
			}
			if labels, _ := r["labels"].(map[string]any); labels["severity"] == nil {
				t.Errorf("alert %s has no severity label", name)
			}
		}
	}
	if got, want := sorted(alerts), sorted(wantAlerts); !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %q\nwant %q", got, want)
	}
}

// checkQuery checks the selectors of one query against the exported
// metrics, returning the metric names it selects.
func checkQuery(t *testing.T, where string, q query, exported map[string]map[string]bool) []string {
	t.Helper()
	sels, err := parseSelectors(q.expr)
	if err != nil {
		t.Errorf("%s: %v in %q", where, err, q.expr)
		return nil
	}
	var names []string
	for _, s := range sels {
		labels, ok := exported[s.metric]
		if !ok {
			t.Errorf("%s: %s is not a metric the manager exports (query %q)", where, s.metric, q.expr)
			continue
		}
		names = append(names, s.metric)
		for _, l := range append(s.labels, q.labels...) {
			if !labels[l] && !slices.Contains(targetLabels, l) {
				t.Errorf("%s: %s has no label %q (query %q)", where, s.metric, l, q.expr)
			}
		}
	}
	return names
}

// exportedMetrics returns every metric the running manager exports, with
// its labels: the families controller-runtime's registry gathers (with a
// histogram's _bucket, _sum and _count series), and the descriptions of
// every collector Herald registered, vectors without series included. A
// fleet's MQTT client collector is registered only while its session
// runs, so it is described from mqttprom.NewCollector with the labels
// controllers gives it.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	// Reconciles make controller-runtime's histograms gather.
	createFleetAndRollout(t, newKubectl(t, controlPlane(t)), "metrics-check")
	eventually(t, 60*time.Second, func() error {
		fams, err := crmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		for _, want := range []string{"controller_runtime_reconcile_time_seconds", "workqueue_depth"} {
			found := false
			for _, f := range fams {
				found = found || f.GetName() == want
			}
			if !found {
				return fmt.Errorf("%s not gathered yet", want)
			}
		}
		return nil
	})
	fams, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}

	exported := make(map[string]map[string]bool)
	add := func(name string, labels ...string) {
		if exported[name] == nil {
			exported[name] = make(map[string]bool)
		}
		for _, l := range labels {
			exported[name][l] = true
		}
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			name := f.GetName()
			// The type by name keeps client_model out of the imports.
			switch f.GetType().String() {
			case "HISTOGRAM", "GAUGE_HISTOGRAM":
				add(name+"_bucket", append(labels, "le")...)
				add(name+"_sum", labels...)
				add(name+"_count", labels...)
			case "SUMMARY":
				add(name, append(labels, "quantile")...)
				add(name+"_sum", labels...)
				add(name+"_count", labels...)
			default:
				add(name, labels...)
			}
		}
	}
	collectors := running.collectors.registered()
	if len(collectors) == 0 {
		t.Fatal("Herald's controllers registered no metrics")
	}
	client := mqttprom.NewCollector(noStats{}, prometheus.Labels{"namespace": "ns", "fleet": "fleet"})
	for _, c := range append(collectors, client) {
		descs, err := describe(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range descs {
			add(d.name, d.labels...)
		}
	}
	return exported
}

// noStats is a client that has done nothing.
type noStats struct{}

func (noStats) Stats() mqtt.Stats { return mqtt.Stats{} }

// desc is what a prometheus.Desc says of a metric.
type desc struct {
	name   string
	labels []string
}

// descPattern matches prometheus.Desc.String: the name, help and unit
// quoted, then constant labels name="value", then variable label names.
var descPattern = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: "(?:[^"\\]|\\.)*", unit: "(?:[^"\\]|\\.)*", constLabels: \{(.*)\}, variableLabels: \{([^}]*)\}\}$`)

var constLabelPattern = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// describe returns the metrics c describes. The Desc type keeps its
// fields to itself, so they are read back from its String form.
func describe(c prometheus.Collector) ([]desc, error) {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []desc
	var err error
	for d := range ch {
		m := descPattern.FindStringSubmatch(d.String())
		if m == nil {
			err = fmt.Errorf("cannot read %s", d)
			continue
		}
		name, qerr := strconv.Unquote(m[1])
		if qerr != nil {
			err = fmt.Errorf("cannot read %s: %w", d, qerr)
			continue
		}
		var labels []string
		for _, lp := range constLabelPattern.FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, lp[1])
		}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels = append(labels, l)
			}
		}
		out = append(out, desc{name: name, labels: labels})
	}
	return out, err
}

// query is one PromQL expression, with labels it asks of every metric it
// selects beyond its matchers (a label_values variable's label).
type query struct {
	expr   string
	labels []string
}

// labelValuesPattern matches Grafana's label_values(expr, label).
var labelValuesPattern = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// dashboardQueries returns the dashboard's panel queries (every "expr",
// rows and nested panels included) and its variables' label_values
// queries.
func dashboardQueries(board []byte) ([]query, error) {
	var root map[string]any
	if err := json.Unmarshal(board, &root); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var out []query
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok && k == "expr" {
					out = append(out, query{expr: s})
					continue
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(root["panels"])

	templating, _ := root["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		var q string
		switch x := v["query"].(type) {
		case string:
			q = x
		case map[string]any:
			q, _ = x["query"].(string)
		}
		m := labelValuesPattern.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %v: want label_values(metric, label), got %q", v["name"], q)
		}
		out = append(out, query{expr: m[1], labels: []string{m[2]}})
	}
	return out, nil
}

// selector is a metric a PromQL expression selects, with the labels its
// matchers name.
type selector struct {
	metric string
	labels []string
}

// notMetrics are PromQL's keywords and aggregation operators, which read
// like metric names but are not.
var notMetrics = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// grouping are the keywords followed by a parenthesised list of labels.
var grouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// parseSelectors finds the metrics a PromQL expression selects. It is a
// lexer, not a parser: it skips strings, ranges, Grafana variables and
// numbers, takes an identifier followed by "(" for a function, one
// followed by a label list after by/on/... for grouping, and any other
// identifier that is not a keyword for a metric name, with the label
// names of the matchers in braces after it.
func parseSelectors(expr string) ([]selector, error) {
	var out []selector
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			return nil, errors.New("a selector without a metric name")
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, errors.New("unclosed [")
			}
			i += j + 1
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				j := strings.IndexByte(expr[i:], '}')
				if j < 0 {
					return nil, errors.New("unclosed ${")
				}
				i += j + 1
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			next := byte(0)
			if k < len(expr) {
				next = expr[k]
			}
			switch {
			case grouping[word] && next == '(':
				end := strings.IndexByte(expr[k:], ')')
				if end < 0 {
					return nil, fmt.Errorf("unclosed label list after %s", word)
				}
				i = k + end + 1
			case next == '(' || notMetrics[word]:
				i = j
			default:
				sel := selector{metric: word}
				i = j
				if next == '{' {
					labels, end, err := parseMatchers(expr, k)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", word, err)
					}
					sel.labels, i = labels, end
				}
				out = append(out, sel)
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		default:
			i++
		}
	}
	return out, nil
}

// parseMatchers reads {label op "value", ...} starting at expr[i] == '{'
// and returns the label names and the offset after the closing brace.
func parseMatchers(expr string, i int) ([]string, int, error) {
	var labels []string
	i++
	for {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == ',' || expr[i] == '\n' || expr[i] == '\t') {
			i++
		}
		if i >= len(expr) {
			return nil, 0, errors.New("unclosed {")
		}
		if expr[i] == '}' {
			return labels, i + 1, nil
		}
		j := i
		for j < len(expr) && isIdent(expr[j]) {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("want a label name at %q", expr[i:])
		}
		label := expr[i:j]
		if label == "__name__" {
			return nil, 0, errors.New("matches on __name__; name the metric instead")
		}
		labels = append(labels, label)
		for j < len(expr) && expr[j] == ' ' {
			j++
		}
		op := j
		for j < len(expr) && strings.IndexByte("=!~", expr[j]) >= 0 {
			j++
		}
		if !slices.Contains([]string{"=", "!=", "=~", "!~"}, expr[op:j]) {
			return nil, 0, fmt.Errorf("label %s: want a matcher operator at %q", label, expr[op:])
		}
		for j < len(expr) && expr[j] == ' ' {
			j++
		}
		if j >= len(expr) || (expr[j] != '"' && expr[j] != '\'' && expr[j] != '`') {
			return nil, 0, fmt.Errorf("label %s: want a quoted value", label)
		}
		end, err := skipString(expr, j)
		if err != nil {
			return nil, 0, err
		}
		i = end
	}
}

// skipString returns the offset after the string literal at expr[i].
func skipString(expr string, i int) (int, error) {
	quote := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && quote != '`':
			j++
		case expr[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %q", expr[i:])
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func TestParseSelectors(t *testing.T) {
	for name, tc := range map[string]struct {
		expr    string
		want    []selector
		wantErr string
	}{
		"bare name": {
			expr: "up",
			want: []selector{{metric: "up"}},
		},
		"comparison": {
			expr: "herald_broker_connected == 0",
			want: []selector{{metric: "herald_broker_connected"}},
		},
		"aggregation with grouping first": {
			expr: `sum by (namespace, fleet) (rate(herald_malformed_messages_total{namespace=~"$namespace", fleet!=""}[$__rate_interval])) > 10`,
			want: []selector{{metric: "herald_malformed_messages_total", labels: []string{"namespace", "fleet"}}},
		},
		"grouping last, vector matching, offset": {
			expr: `sum(a_total) by (x) / on (x) group_left (y) b offset 5m and bool c{d='e"}'}`,
			want: []selector{{metric: "a_total"}, {metric: "b"}, {metric: "c", labels: []string{"d"}}},
		},
		"functions and numbers": {
			expr: `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) or vector(1e3)`,
			want: []selector{{metric: "h_bucket"}},
		},
		"strings and comments are not names": {
			expr: "label_replace(m, \"dst\", \"$1\", \"src\", \"(.*)\") # not_a_metric\n",
			want: []selector{{metric: "m"}},
		},
		"keywords only": {
			expr: "1 and 2",
		},
		"nameless selector": {
			expr:    `{job="x"}`,
			wantErr: "without a metric name",
		},
		"__name__": {
			expr:    `m{__name__=~"herald_.*"}`,
			wantErr: "__name__",
		},
		"unclosed matcher": {
			expr:    `m{a="b"`,
			wantErr: "unclosed",
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseSelectors(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDescribe reads back a vector's and a constant-labelled metric's
// descriptions.
func TestDescribe(t *testing.T) {
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "a_b", Help: `help, with "quotes" and {braces}`,
		ConstLabels: prometheus.Labels{"k": `v "x"`}}, []string{"namespace", "fleet"})
	got, err := describe(vec)
	if err != nil {
		t.Fatal(err)
	}
	want := []desc{{name: "a_b", labels: []string{"k", "namespace", "fleet"}}}
	for i := range got {
		sort.Strings(got[i].labels)
		sort.Strings(want[i].labels)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
