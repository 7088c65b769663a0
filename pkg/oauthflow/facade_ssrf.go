package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrAddressNotAllowed is a fetch refused because its host has, or resolves to, an address
// the gateway does not fetch from: loopback, private, link-local and the like (see
// addressPolicy), unless configured.
var ErrAddressNotAllowed = errors.New("facade: address not allowed")

// refusedPrefixes are the networks a fetch on a client's behalf never reaches unless allowed:
// anything that is not a public unicast address, and the IPv6 forms that carry an IPv4
// address inside (a NAT64, 6to4 or Teredo relay would take the request to it).
var refusedPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network" (RFC 791); 0.0.0.0 reaches the local host
		"10.0.0.0/8",      // private (RFC 1918)
		"100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata services
		"172.16.0.0/12",   // private (RFC 1918)
		"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
		"192.0.2.0/24",    // documentation (RFC 5737)
		"192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
		"192.168.0.0/16",  // private (RFC 1918)
		"198.18.0.0/15",   // benchmarking (RFC 2544)
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the broadcast address
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::/96",           // IPv4-compatible (deprecated)
		"::ffff:0:0/96",   // IPv4-mapped (checked as IPv4 first; here for completeness)
		"64:ff9b::/96",    // NAT64 (RFC 6052)
		"64:ff9b:1::/48",  // local-use NAT64 (RFC 8215)
		"100::/64",        // discard-only (RFC 6666)
		"2001::/32",       // Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4
		"fc00::/7",        // unique local (RFC 4193)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// addressPolicy decides which addresses a fetch may connect to.
type addressPolicy struct {
	// allow are networks permitted even though refusedPrefixes holds them (a test server on
	// loopback, a client's metadata served from inside the network on purpose).
	allow []netip.Prefix
}

// permitted reports whether a connection to a may be made. IPv4-mapped IPv6 addresses are
// judged as the IPv4 address they carry; an address with a zone is never permitted.
func (p addressPolicy) permitted(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	for _, pr := range p.allow {
		if pr.Contains(a) {
			return true
		}
	}
	for _, pr := range refusedPrefixes {
		if pr.Contains(a) {
			return false
		}
	}
	// What the standard library calls non-public, whatever the table above missed.
	return !a.IsLoopback() && !a.IsPrivate() && !a.IsUnspecified() && !a.IsMulticast() &&
		!a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() && !a.IsInterfaceLocalMulticast()
}

// control is the dialer's Control hook: the last check, on the very address the socket is
// about to connect to, whatever resolved it.
func (p addressPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !p.permitted(ap.Addr()) {
		return ErrAddressNotAllowed
	}
	return nil
}

// lookupFunc resolves a host name to its addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// safeDialer connects only to permitted addresses: it resolves the host itself, refuses the
// connection if any resolved address is not permitted (a name that resolves to a public and a
// private address is refused whole: which one a retry would pick is not ours to decide), then
// dials the addresses themselves, so that no second resolution (DNS rebinding) can change
// them, with the Control hook checking each again.
type safeDialer struct {
	policy addressPolicy
	lookup lookupFunc
	dialer net.Dialer
}

func newSafeDialer(policy addressPolicy, lookup lookupFunc, timeout time.Duration) *safeDialer {
	if lookup == nil {
		lookup = defaultLookup
	}
	d := &safeDialer{policy: policy, lookup: lookup}
	d.dialer = net.Dialer{Timeout: timeout, Control: policy.control}
	return d
}

// DialContext is for http.Transport.
func (d *safeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("facade: network %q not allowed", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = d.lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("facade: resolving the client's host: %w", err)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("facade: the client's host has no address")
	}
	for _, a := range addrs {
		if !d.policy.permitted(a) {
			return nil, ErrAddressNotAllowed
		}
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
