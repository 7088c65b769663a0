package oauthflow

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
)

func TestAddressPolicy(t *testing.T) {
	t.Parallel()
	refused := []string{
		"127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.254", "192.0.0.8", "198.18.0.1",
		"224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "203.0.113.9",
		"::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "2001:0:4136:e378::1", "2001:db8::1", "100::1",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "100.128.0.1", "172.32.0.1"}
	var p addressPolicy
	for _, s := range refused {
		if p.permitted(netip.MustParseAddr(s)) {
			t.Errorf("%s permitted", s)
		}
		if err := p.control("tcp", net.JoinHostPort(s, "443"), nil); !errors.Is(err, ErrAddressNotAllowed) {
			t.Errorf("control(%s) = %v", s, err)
		}
	}
	for _, s := range allowed {
		if !p.permitted(netip.MustParseAddr(s)) {
			t.Errorf("%s refused", s)
		}
		if err := p.control("tcp", net.JoinHostPort(s, "443"), nil); err != nil {
			t.Errorf("control(%s) = %v", s, err)
		}
	}
	for _, bad := range []string{"fe80::1%eth0", "", "not-an-address"} {
		if err := p.control("tcp", net.JoinHostPort(bad, "443"), nil); err == nil {
			t.Errorf("control(%q) accepted", bad)
		}
	}
	lo := addressPolicy{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1"} {
		if !lo.permitted(netip.MustParseAddr(s)) {
			t.Errorf("%s refused with 127.0.0.0/8 allowed", s)
		}
	}
	if lo.permitted(netip.MustParseAddr("::1")) || lo.permitted(netip.MustParseAddr("10.0.0.1")) {
		t.Error("allowing 127.0.0.0/8 allowed more")
	}
}

// The dialer connects to nothing when any address of the host is refused, and a literal
// refused address never reaches the network either.
func TestSafeDialerConnectsNowhere(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "loopback.example":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "mixed.example":
			return []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("127.0.0.1")}, nil
		case "mapped.example":
			return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	d := newSafeDialer(addressPolicy{}, lookup, 0)
	for _, host := range []string{"loopback.example", "mixed.example", "mapped.example", "127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0"} {
		c, err := d.DialContext(t.Context(), "tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", host)
		} else if !errors.Is(err, ErrAddressNotAllowed) {
			t.Errorf("%s: %v, want ErrAddressNotAllowed", host, err)
		}
	}
	if _, err := d.DialContext(t.Context(), "udp", net.JoinHostPort("8.8.8.8", "53")); err == nil {
		t.Error("udp dialed")
	}
	// The Control hook alone, with the pre-dial check bypassed: still refused.
	var nd net.Dialer
	nd.Control = addressPolicy{}.control
	if c, err := nd.DialContext(t.Context(), "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the Control hook let a loopback connection through")
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the listener", n)
	}
	// Allowed, it connects.
	ok := newSafeDialer(addressPolicy{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, lookup, 0)
	c, err := ok.DialContext(t.Context(), "tcp", net.JoinHostPort("mapped.example", port))
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	c.Close()
}
