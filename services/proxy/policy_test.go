package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers for the names it knows and says "no such host"
// for the rest.
type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	addrs, ok := r[strings.ToLower(host)] // names are case-insensitive
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		if network == "ip4" && !ip.Is4() || network == "ip6" && !ip.Is6() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	names := fakeResolver{
		"localhost":   {"127.0.0.1", "::1"},
		"evil.test":   {"10.1.2.3"},
		"mixed.test":  {"127.0.0.1", "10.1.2.3"},
		"db.internal": {"10.9.9.9"},
		"zero.test":   {"0.0.0.0"},
		"mapped.test": {"::ffff:127.0.0.1"},
	}
	allow, err := parseAllow([]string{"db.internal:5432", " 192.0.2.7:80", "[2001:DB8::1]:443", ""})
	if err != nil {
		t.Fatal(err)
	}
	p := &policy{allow: allow, resolver: names}
	for _, tc := range []struct {
		proto, addr string
		want        string // the addresses to dial, or the error's text
	}{
		{"tcp", "127.0.0.1:8080", "[127.0.0.1:8080]"},
		{"", "[::1]:8080", "[[::1]:8080]"},
		{"tcp", "localhost:80", "[127.0.0.1:80 [::1]:80]"},
		{"tcp4", "localhost:80", "[127.0.0.1:80]"},
		{"tcp6", "localhost:80", "[[::1]:80]"},
		{"tcp", "mapped.test:80", "[127.0.0.1:80]"},
		{"tcp", "[::ffff:127.0.0.1]:80", "[127.0.0.1:80]"},
		{"tcp", "127.8.9.10:80", "[127.8.9.10:80]"},
		{"tcp", "10.0.0.1:80", "proxy: refusing 10.0.0.1:80: 10.0.0.1 is not a loopback address (list 10.0.0.1:80 in CONMAN_PROXY_ALLOW to allow it)"},
		{"tcp", "169.254.169.254:80", "is not a loopback address"},
		{"tcp", "[::ffff:10.0.0.1]:80", "10.0.0.1 is not a loopback address"},
		{"tcp", "evil.test:80", "proxy: refusing evil.test:80: 10.1.2.3 is not a loopback address"},
		{"tcp", "mixed.test:80", "10.1.2.3 is not a loopback address"},
		{"tcp", "0.0.0.0:80", "0.0.0.0 is an unspecified address"},
		{"tcp", "[::]:80", ":: is an unspecified address"},
		{"tcp", "zero.test:80", "0.0.0.0 is an unspecified address"},
		{"tcp", "nowhere.test:80", "proxy: resolve nowhere.test: no such host"},
		{"tcp", "[fe80::1%eth0]:80", "zoned addresses are not allowed"},
		{"udp", "127.0.0.1:53", `proxy: unsupported protocol "udp" (only tcp)`},
		{"tcp", "127.0.0.1", `proxy: bad address "127.0.0.1": want host:port`},
		{"tcp", ":80", "no host"},
		{"tcp", "127.0.0.1:0", `bad port "0"`},
		{"tcp", "127.0.0.1:http", `bad port "http"`},
		{"tcp", "127.0.0.1:65536", `bad port "65536"`},
		// The allow-list, by host:port as written (names case-insensitive).
		{"tcp", "db.internal:5432", "[10.9.9.9:5432]"},
		{"tcp", "DB.Internal:5432", "[10.9.9.9:5432]"},
		{"tcp", "db.internal:5433", "is not a loopback address"},
		{"tcp", "192.0.2.7:80", "[192.0.2.7:80]"},
		{"tcp", "[2001:db8::1]:443", "[[2001:db8::1]:443]"},
		{"tcp4", "[2001:db8::1]:443", "has no tcp4 address"},
	} {
		t.Run(tc.proto+" "+tc.addr, func(t *testing.T) {
			got, err := p.resolve(context.Background(), tc.proto, tc.addr)
			text := fmt.Sprint(got)
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tc.want) || (err == nil) != strings.HasPrefix(tc.want, "[") {
				t.Fatalf("got %s, want %s", text, tc.want)
			}
		})
	}
	for _, bad := range []string{"nohost", "host:", "host:99999"} {
		if _, err := parseAllow([]string{bad}); err == nil {
			t.Errorf("allow-list entry %q accepted", bad)
		}
	}
}
