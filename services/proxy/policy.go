package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolver looks names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// policy decides where a connect may go: loopback addresses, and the
// allow-listed host:port pairs.
type policy struct {
	allow    map[string]bool // normalised host:port
	resolver Resolver
}

// AllowEnv names the environment variable holding the allow-list.
const AllowEnv = "CONMAN_PROXY_ALLOW"

// parseAllow reads an allow-list: host:port entries, comma-separated.
func parseAllow(entries []string) (map[string]bool, error) {
	allow := make(map[string]bool)
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		host, port, err := splitHostPort(e)
		if err != nil {
			return nil, fmt.Errorf("allow-list entry %q: %w", e, err)
		}
		allow[normalise(host, port)] = true
	}
	return allow, nil
}

// normalise spells host:port one way: host lowercased, an IP address in its
// canonical form.
func normalise(host string, port uint16) string {
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(int(port)))
}

func splitHostPort(addr string) (string, uint16, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("want host:port")
	}
	if host == "" {
		return "", 0, errors.New("no host")
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("bad port %q", portText)
	}
	return host, uint16(port), nil
}

// resolve checks a connect{proto, addr} and returns the addresses to dial,
// in order. Every address a name resolves to must pass, so a name cannot
// smuggle a remote address in beside a loopback one; the caller dials the
// addresses returned, never the name again.
func (p *policy) resolve(ctx context.Context, proto, addr string) ([]netip.AddrPort, error) {
	lookup := "ip"
	switch proto {
	case "", "tcp":
	case "tcp4":
		lookup = "ip4"
	case "tcp6":
		lookup = "ip6"
	default:
		return nil, fmt.Errorf("proxy: unsupported protocol %q (only tcp)", proto)
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: bad address %q: %w", addr, err)
	}
	allowed := p.allow[normalise(host, port)]

	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, fmt.Errorf("proxy: refusing %s: zoned addresses are not allowed", addr)
		}
		ips = []netip.Addr{ip}
	} else {
		ips, err = p.resolver.LookupNetIP(ctx, lookup, host)
		if err != nil {
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, fmt.Errorf("proxy: resolve %s: no such host", host)
			}
			return nil, fmt.Errorf("proxy: resolve %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("proxy: resolve %s: no addresses", host)
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ip = ip.Unmap()
		switch {
		case ip.IsUnspecified():
			return nil, fmt.Errorf("proxy: refusing %s: %s is an unspecified address", addr, ip)
		case !allowed && !ip.IsLoopback():
			return nil, fmt.Errorf("proxy: refusing %s: %s is not a loopback address (list %s in %s to allow it)", addr, ip, normalise(host, port), AllowEnv)
		case lookup == "ip4" && !ip.Is4(), lookup == "ip6" && !ip.Is6():
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("proxy: %s has no %s address", addr, proto)
	}
	return out, nil
}
