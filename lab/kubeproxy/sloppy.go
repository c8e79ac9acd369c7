package kubeproxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseAddrSloppy parses an IP address the way Kubernetes' ParseIPSloppy
// does: IPv4 octets may carry leading zeros and are read as decimal
// ("172.30.0.041" is 172.30.0.41), because the API server accepted such
// values before Go 1.17 and old objects still hold them. netip.ParseAddr
// alone rejects them.
func ParseAddrSloppy(s string) (netip.Addr, error) {
	fixed, err := stripIPv4Zeros(s)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(fixed)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parsing IP %q: %w", s, err)
	}
	return a.Unmap(), nil
}

// ParsePrefixSloppy parses a CIDR like Kubernetes' ParseCIDRSloppy and
// returns the masked network, as net.ParseCIDR does: "203.0.113.000/025"
// gives 203.0.113.0/25.
func ParsePrefixSloppy(s string) (netip.Prefix, error) {
	addr, bits, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: no '/'", s)
	}
	a, err := ParseAddrSloppy(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: %w", s, err)
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 0 || n > a.BitLen() || bits == "" || bits[0] == '+' || bits[0] == '-' {
		return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: bad prefix length", s)
	}
	return netip.PrefixFrom(a, n).Masked(), nil
}

// stripIPv4Zeros rewrites the dotted-quad part of s (all of s, or the tail
// of an IPv6 address) without leading zeros.
func stripIPv4Zeros(s string) (string, error) {
	head, quad := "", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		head, quad = s[:i+1], s[i+1:]
	}
	if !strings.Contains(quad, ".") {
		return s, nil
	}
	parts := strings.Split(quad, ".")
	if len(parts) != 4 {
		return "", fmt.Errorf("parsing IP %q: not a dotted quad", s)
	}
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return "", fmt.Errorf("parsing IP %q: bad octet %q", s, p)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > 255 {
			return "", fmt.Errorf("parsing IP %q: bad octet %q", s, p)
		}
		parts[i] = strconv.Itoa(n)
	}
	return head + strings.Join(parts, "."), nil
}
