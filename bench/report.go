package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// summary is the median of one client's rounds at one QoS.
type summary struct {
	client    string
	version   packet.Version
	qos       byte
	rounds    int     // successful rounds
	failed    int     // failed rounds
	rate      float64 // msg/s
	spread    float64 // (max-min)/median of the rates
	cpu       float64 // client µs/msg
	allocs    float64 // client allocations per message
	bytes     float64 // client bytes allocated per message
	brokerCPU float64 // share of one core mosquitto used
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize groups the runs by client, version and QoS: QoS first, then
// the order of -clients, v5 before 3.1.1.
func (r *report) summarize() []summary {
	type key struct {
		client  string
		version packet.Version
		qos     byte
	}
	type samples struct{ rate, cpu, allocs, bytes, broker []float64 }
	var keys []key
	groups := map[key]*samples{}
	failed := map[key]int{}
	n := float64(r.suite.n)
	for i := range r.runs {
		m := &r.runs[i]
		k := key{m.client, m.version, m.qos}
		if _, seen := groups[k]; !seen {
			keys = append(keys, k)
			groups[k] = &samples{}
		}
		if m.err != nil {
			failed[k]++
			continue
		}
		g := groups[k]
		g.rate = append(g.rate, m.rate(r.suite.n))
		g.cpu = append(g.cpu, micros(m.child.CPU())/n)
		g.allocs = append(g.allocs, float64(m.child.Mallocs)/n)
		g.bytes = append(g.bytes, float64(m.child.AllocBytes)/n)
		g.broker = append(g.broker, m.brokerCPU.Seconds()/m.elapsed.Seconds())
	}
	rank := func(k key) int {
		i := slices.Index(r.suite.clients, k.client)
		return int(k.qos)*1000 + i*10 + int(packet.V5-k.version)
	}
	slices.SortFunc(keys, func(a, b key) int { return rank(a) - rank(b) })
	out := make([]summary, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		s := summary{client: k.client, version: k.version, qos: k.qos, rounds: len(g.rate), failed: failed[k]}
		if s.rounds > 0 {
			s.rate = median(g.rate)
			s.spread = (slices.Max(g.rate) - slices.Min(g.rate)) / s.rate
			s.cpu = median(g.cpu)
			s.allocs = median(g.allocs)
			s.bytes = median(g.bytes)
			s.brokerCPU = median(g.broker)
		}
		out = append(out, s)
	}
	return out
}

func lookup(ss []summary, client string, v packet.Version, qos byte) *summary {
	for i := range ss {
		if s := &ss[i]; s.client == client && s.version == v && s.qos == qos && s.rounds > 0 {
			return s
		}
	}
	return nil
}

// fastestPaho is the faster of the two paho clients at qos.
func fastestPaho(ss []summary, qos byte) *summary {
	var best *summary
	for _, c := range []struct {
		name string
		v    packet.Version
	}{{clientPaho, packet.V5}, {clientPahoV3, packet.V311}} {
		if s := lookup(ss, c.name, c.v, qos); s != nil && (best == nil || s.rate > best.rate) {
			best = s
		}
	}
	return best
}

func label(client string, v packet.Version) string { return client + " (" + v.String() + ")" }

// print writes the tables as Markdown, readable in a terminal too.
func (r *report) print(w io.Writer) {
	s := r.suite
	ss := r.summarize()
	fmt.Fprintf(w, "\n## Herald MQTT client benchmark\n\n")
	fmt.Fprintf(w, "%d messages × %d B per run, median of %d rounds; QoS 1 window %d in flight; "+
		"mosquitto %s on %s; %d CPUs; %s.\n\n",
		s.n, s.size, s.rounds, s.window, r.broker.version, r.broker.addr, r.cpus, r.startedAt.UTC().Format(time.DateOnly))

	fmt.Fprintf(w, "mosquitto.conf: `%s`; every other setting is mosquitto's default.\n\n", strings.Join(r.broker.config, "; "))
	accept := "a QoS 1 fence publish after the run is acknowledged"
	if s.qos0Accept == acceptSubscriber {
		accept = "a subscriber has counted every message"
	}
	fmt.Fprintf(w, "msg/s: QoS 1 until every PUBACK is in; QoS 0 until %s. "+
		"CPU and allocations: the client process over the same interval.\n\n", accept)
	fmt.Fprintln(w, "| QoS | client | MQTT | msg/s | spread | vs raw | client CPU µs/msg | allocs/msg | B/msg | broker CPU |")
	fmt.Fprintln(w, "|----:|--------|------|------:|-------:|-------:|------------------:|-----------:|------:|-----------:|")
	for _, x := range ss {
		if x.rounds == 0 {
			fmt.Fprintf(w, "| %d | %s | %s | failed | | | | | | |\n", x.qos, x.client, x.version)
			continue
		}
		vsRaw := "–"
		if raw := lookup(ss, clientRaw, x.version, x.qos); raw != nil {
			vsRaw = fmt.Sprintf("%.2f×", x.rate/raw.rate)
		}
		failed := ""
		if x.failed > 0 {
			failed = fmt.Sprintf(" (%d failed)", x.failed)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s%s | ±%.0f%% | %s | %.2f | %.2f | %.0f | %.0f%% |\n",
			x.qos, x.client, x.version, thousands(x.rate), failed, x.spread*50, vsRaw, x.cpu, x.allocs, x.bytes, x.brokerCPU*100)
	}

	if len(r.idle) > 0 || len(r.idleErrs) > 0 {
		fmt.Fprintf(w, "\nIdle clients: %d per process, keepalive %s, after GC.\n\n", s.idle, clientKeepAlive)
		fmt.Fprintln(w, "| client | MQTT | heap KiB/client | heap+stacks KiB/client | goroutines/client |")
		fmt.Fprintln(w, "|--------|------|----------------:|-----------------------:|------------------:|")
		for _, lib := range libraries {
			for _, v := range lib.versions {
				key := idleKey(lib.name, v)
				if err, failed := r.idleErrs[key]; failed {
					fmt.Fprintf(w, "| %s | %s | failed: %v | | |\n", lib.name, v, err)
					continue
				}
				res, ok := r.idle[key]
				if !ok {
					continue
				}
				n := float64(res.Clients)
				fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.1f |\n", lib.name, v,
					float64(res.HeapInuse)/n/1024, float64(res.HeapInuse+res.StackInuse)/n/1024, float64(res.Goroutines)/n)
			}
		}
	}
	r.printTargets(w, ss)
}

func (r *report) printTargets(w io.Writer, ss []summary) {
	fmt.Fprintf(w, "\nTargets (Herald, per protocol version):\n\n")
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	heralds := []packet.Version{packet.V5, packet.V311}
	for _, qos := range r.suite.qos {
		var parts []string
		for _, v := range heralds {
			h, raw := lookup(ss, clientHerald, v, qos), lookup(ss, clientRaw, v, qos)
			if h == nil || raw == nil {
				continue
			}
			ratio := h.rate / raw.rate
			parts = append(parts, fmt.Sprintf("%s %.2f× %s", v, ratio, check(ratio >= 0.9)))
		}
		fmt.Fprintf(w, "- QoS %d throughput ≥ 0.9× raw: %s\n", qos, strings.Join(parts, "; "))
	}
	for _, qos := range r.suite.qos {
		best := fastestPaho(ss, qos)
		if best == nil {
			continue
		}
		var parts []string
		for _, v := range heralds {
			if h := lookup(ss, clientHerald, v, qos); h != nil {
				ratio := h.rate / best.rate
				verdict := ""
				if qos == 1 {
					verdict = " " + check(ratio >= 3)
				}
				parts = append(parts, fmt.Sprintf("%s %.2f×%s", v, ratio, verdict))
			}
		}
		goal := "Herald / faster paho (no target)"
		if qos == 1 {
			goal = "QoS 1 ≥ 3× the faster paho"
		} else {
			goal = "QoS 0 " + goal
		}
		fmt.Fprintf(w, "- %s, %s at %s msg/s: %s\n", goal, label(best.client, best.version), thousands(best.rate), strings.Join(parts, "; "))
	}
	for _, qos := range r.suite.qos {
		limit := 1.0
		if qos == 1 {
			limit = 2
		}
		var parts []string
		for _, v := range heralds {
			if h := lookup(ss, clientHerald, v, qos); h != nil {
				parts = append(parts, fmt.Sprintf("%s %.2f µs %s", v, h.cpu, check(h.cpu <= limit)))
			}
		}
		fmt.Fprintf(w, "- client CPU ≤ %.0f µs/msg at QoS %d: %s\n", limit, qos, strings.Join(parts, "; "))
	}
	if len(r.idle) > 0 {
		// Memory is heap plus goroutine stacks: stacks are memory the
		// process holds for each client as surely as its heap, and leaving
		// them out would hide most of what a client with many goroutines
		// costs. Heap alone is reported beside it.
		memory := func(res idleResult) float64 { return float64(res.HeapInuse+res.StackInuse) / float64(res.Clients) }
		heap := func(res idleResult) float64 { return float64(res.HeapInuse) / float64(res.Clients) }
		for _, m := range []struct {
			name    string
			per     func(idleResult) float64
			goal    bool
			comment string
		}{
			{"idle memory (heap + stacks)", memory, true, ""},
			{"idle heap alone", heap, false, " (for reference; the target is the line above)"},
		} {
			var best string
			var bestPer float64
			for _, key := range []string{idleKey(clientPaho, packet.V5), idleKey(clientPahoV3, packet.V311)} {
				if res, ok := r.idle[key]; ok {
					if per := m.per(res); best == "" || per < bestPer {
						best, bestPer = key, per
					}
				}
			}
			if best == "" {
				continue
			}
			var parts []string
			for _, v := range heralds {
				if res, ok := r.idle[idleKey(clientHerald, v)]; ok {
					ratio := m.per(res) / bestPer
					verdict := ""
					if m.goal {
						verdict = " " + check(ratio <= 1.0/3)
					}
					parts = append(parts, fmt.Sprintf("%s %.2f×%s", v, ratio, verdict))
				}
			}
			goal := "≤ 1/3 of"
			if !m.goal {
				goal = "against"
			}
			fmt.Fprintf(w, "- %s per client %s the best paho (%s, %.1f KiB): %s%s\n", m.name, goal, best, bestPer/1024, strings.Join(parts, "; "), m.comment)
		}
	}
}

// thousands formats a rate with thin separators, e.g. 312,408.
func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
