package config

import (
	"net"
	"strconv"
	"strings"
)

type listener struct{ path, host, port string }

func (c *Config) validateListen(ch *checker) {
	var ls []listener
	for _, l := range []struct {
		path, addr, example string
		canBeOff            bool
	}{
		{"listen.grpc", c.Listen.GRPC, defaultGRPCAddr, false},
		{"listen.http", c.Listen.HTTP, defaultHTTPAddr, true},
		{"listen.admin", c.Listen.Admin, defaultAdminAddr, true},
	} {
		if l.addr == Off {
			if !l.canBeOff {
				ch.add(l.path, `cannot be "off" (only the http and admin listeners can be disabled)`)
			}
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			if l.canBeOff {
				ch.add(l.path, `must be host:port, such as %q, or "off"`, l.example)
			} else {
				ch.add(l.path, "must be host:port, such as %q", l.example)
			}
			continue
		}
		ok := true
		if host != "" && net.ParseIP(host) == nil && !isHostname(strings.ToLower(host)) {
			ch.add(l.path, "host must be an IP address, a host name, or empty for all interfaces")
			ok = false
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
			ch.add(l.path, "port must be a number from 0 to 65535")
			ok = false
		}
		if !ok {
			continue
		}
		for _, prev := range ls {
			if port != "0" && port == prev.port && (host == prev.host || allInterfaces(host) || allInterfaces(prev.host)) {
				ch.add(l.path, "conflicts with %s (same port)", prev.path)
				break
			}
		}
		ls = append(ls, listener{l.path, host, port})
	}
}

func allInterfaces(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}
