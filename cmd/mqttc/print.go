package main

// printer renders received messages as mosquitto_sub does.
type printer struct {
	format  []formatPart // -F; overrides verbose
	verbose bool         // -v
	eol     bool         // no -N
}

// appendMessage renders r and returns the bytes plus any warnings for
// stderr. The payload goes out raw, binary or not.
func (p *printer) appendMessage(dst []byte, r *delivery) ([]byte, []string) {
	m := r.msg
	if p.format != nil {
		var warnings []string
		dst, warnings = appendFormatted(dst, p.format, r)
		if p.eol {
			dst = append(dst, '\n')
		}
		return dst, warnings
	}
	// An empty payload prints nothing at all in the default mode, and
	// "topic (null)" with -v unless -N; that is mosquitto_sub's rule.
	switch {
	case len(m.Payload) > 0 && p.verbose:
		dst = append(append(append(dst, m.Topic...), ' '), m.Payload...)
	case len(m.Payload) > 0:
		dst = append(dst, m.Payload...)
	case p.verbose && p.eol:
		return append(append(dst, m.Topic...), " (null)\n"...), nil
	default:
		return dst, nil
	}
	if p.eol {
		dst = append(dst, '\n')
	}
	return dst, nil
}
