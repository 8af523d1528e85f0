package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldiot/herald/mqtt/packet"
)

// The -d lines follow libmosquitto's log lines word for word, so that
// whoever greps mosquitto_pub -d output can grep ours. As with mosquitto,
// they go to stdout.

// debugSent returns the -d lines for a packet we sent; client is our
// client identifier, "(null)" until known.
func debugSent(client string, p packet.Packet) []string {
	prefix := "Client " + client + " sending "
	switch p := p.(type) {
	case *packet.Connect:
		return []string{prefix + "CONNECT"}
	case *packet.Publish:
		return []string{prefix + describePublish(p)}
	case *packet.Ack:
		switch p.PacketType {
		case packet.TypePuback, packet.TypePubrec:
			return []string{fmt.Sprintf("%s%s (m%d, rc%d)", prefix, p.PacketType, p.PacketID, byte(p.ReasonCode))}
		default:
			return []string{fmt.Sprintf("%s%s (m%d)", prefix, p.PacketType, p.PacketID)}
		}
	case *packet.Subscribe:
		lines := make([]string, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			// mosquitto shows the options byte without the QoS bits.
			options := s.Options() &^ 0x03
			lines[i] = fmt.Sprintf("%sSUBSCRIBE (Mid: %d, Topic: %s, QoS: %d, Options: 0x%02x)", prefix, p.PacketID, s.Filter, s.QoS, options)
		}
		return lines
	case *packet.Unsubscribe:
		lines := make([]string, len(p.Filters))
		for i, f := range p.Filters {
			lines[i] = fmt.Sprintf("%sUNSUBSCRIBE (Mid: %d, Topic: %s)", prefix, p.PacketID, f)
		}
		return lines
	}
	return []string{prefix + p.Type().String()}
}

// debugReceived returns the -d lines for a packet we received.
func debugReceived(client string, p packet.Packet) []string {
	prefix := "Client " + client + " received "
	switch p := p.(type) {
	case *packet.Connack:
		return []string{fmt.Sprintf("%sCONNACK (%d)", prefix, byte(p.ReasonCode))}
	case *packet.Publish:
		return []string{prefix + describePublish(p)}
	case *packet.Ack:
		switch p.PacketType {
		case packet.TypePuback, packet.TypePubcomp:
			return []string{fmt.Sprintf("%s%s (Mid: %d, RC:%d)", prefix, p.PacketType, p.PacketID, byte(p.ReasonCode))}
		default:
			return []string{fmt.Sprintf("%s%s (Mid: %d)", prefix, p.PacketType, p.PacketID)}
		}
	case *packet.Suback:
		// mosquitto_sub's subscribe callback adds the granted QoS list.
		codes := make([]string, len(p.ReasonCodes))
		for i, c := range p.ReasonCodes {
			codes[i] = strconv.Itoa(int(c))
		}
		return []string{prefix + "SUBACK", fmt.Sprintf("Subscribed (mid: %d): %s", p.PacketID, strings.Join(codes, ", "))}
	case *packet.Disconnect:
		return []string{fmt.Sprintf("%sDISCONNECT (%d)", prefix, byte(p.ReasonCode))}
	}
	return []string{prefix + p.Type().String()}
}

func describePublish(p *packet.Publish) string {
	return fmt.Sprintf("PUBLISH (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))",
		b2i(p.Dup), p.QoS, b2i(p.Retain), p.PacketID, p.Topic, len(p.Payload))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
