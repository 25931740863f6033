package outbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrPrivateAddress: an endpoint resolves to an address of this machine
// or of a private network, where an organisation's webhook deliveries
// must not reach.
var ErrPrivateAddress = errors.New("a loopback, private or link-local address")

// ErrInsecureScheme: an endpoint is not https.
var ErrInsecureScheme = errors.New("not https")

// blocked are the networks deliveries never reach beyond the ones netip
// classifies (loopback, RFC 1918 and unique local, link-local, multicast,
// unspecified).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("fec0::/10"),     // site-local (deprecated)
}

// nat64 is the well-known NAT64 prefix: its addresses carry an IPv4
// address in their last 32 bits, which is the one judged.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Private says whether an address is one deliveries must not reach: a
// loopback, private (RFC 1918, unique local fc00::/7), link-local,
// multicast, unspecified or otherwise non-public address, in IPv4-mapped
// and NAT64 IPv6 forms too.
func Private(a netip.Addr) bool {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refusePrivate is a net.Dialer Control function: it runs on the address
// about to be dialled, after name resolution, so a name that resolves (or
// comes to resolve, or redirects) to a private address is refused however
// it got there.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbox: dialling %q: %w", address, err)
	}
	if Private(ap.Addr()) {
		return fmt.Errorf("outbox: refusing to dial %s: %w", ap.Addr(), ErrPrivateAddress)
	}
	return nil
}

// NewHTTPClient is the client deliveries are sent with. Unless
// allowInsecure (local development only), it dials public addresses only
// and follows no redirect to http. It uses no proxy: the dialler would
// judge the proxy's address instead of the endpoint's.
func NewHTTPClient(timeout time.Duration, allowInsecure bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowInsecure {
		d.Control = refusePrivate
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	c := &http.Client{Timeout: timeout, Transport: t}
	if !allowInsecure {
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirected to %s: %w", req.URL.Scheme, ErrInsecureScheme)
			}
			return nil
		}
	}
	return c
}

// CheckEndpoint says why deliveries may not go to an endpoint URL: it is
// not https, or its host is (or resolves to) a private address. A name
// that does not resolve passes: the dialler checks again at delivery.
// allowInsecure (local development only) lets everything through.
func CheckEndpoint(ctx context.Context, u *url.URL, allowInsecure bool) error {
	if allowInsecure {
		return nil
	}
	if u.Scheme != "https" {
		return ErrInsecureScheme
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return ErrPrivateAddress
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if Private(a) {
			return ErrPrivateAddress
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if Private(a) {
			return ErrPrivateAddress
		}
	}
	return nil
}
