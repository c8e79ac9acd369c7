package agent

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// The records Route 53 creates with every public hosted zone: an NS record
// at the apex listing four awsdns name servers, and an SOA naming the first
// of them with serial 1 and Route 53's timers. See "NS and SOA records that
// Amazon Route 53 creates for a public hosted zone",
// https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/SOA-NSrecords.html
// (the name servers are that page's examples; TTLs are the defaults it
// gives: NS 172800, SOA 900).
var route53NameServers = []string{
	"ns-2048.awsdns-64.com.",
	"ns-2049.awsdns-65.net.",
	"ns-2050.awsdns-66.org.",
	"ns-2051.awsdns-67.co.uk.",
}

const (
	route53NSTTL  = 172800
	route53SOATTL = 900
)

func route53SOA(zone string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: route53SOATTL},
		Ns:      route53NameServers[0],
		Mbox:    "awsdns-hostmaster.amazon.com.",
		Serial:  1,
		Refresh: 7200,
		Retry:   900,
		Expire:  1209600,
		Minttl:  86400,
	}
}

// hostedZoneOf is the hosted zone a record name belongs to: the name
// without its first label ("portal.example.com." is in "example.com."), or
// the name itself when that would leave a top-level domain. A topology
// names records, not zones; this is the zone a user would have created.
func hostedZoneOf(fqdn string) string {
	fqdn = dns.Fqdn(strings.ToLower(fqdn))
	labels := dns.SplitDomainName(fqdn)
	if len(labels) < 3 {
		return fqdn
	}
	return dns.Fqdn(strings.Join(labels[1:], "."))
}

// zoneHandler is an authoritative server for Route 53 public hosted zones
// holding alias A records. It answers as Route 53 does:
//   - A at a record: its addresses, TTL aliasTTL (an alias to an ELB has
//     the ELB record's TTL, 60);
//   - SOA and NS at a zone's apex, from the records Route 53 creates;
//   - any other type at an existing name (a record or an apex): NOERROR
//     with no answer and the SOA in the authority section (NODATA, RFC 2308
//     §2.2), and the same for a name with records only below it (an empty
//     non-terminal, RFC 8020);
//   - a name in a zone but with no records: NXDOMAIN with the SOA (RFC 2308
//     §2.1);
//   - a name in no zone it hosts: REFUSED, as Route 53's name servers do.
//
// zones and records are lower-case FQDNs; addrs returns a record's
// addresses at query time (an alias whose load balancer has no node in DNS
// has none: NODATA).
func zoneHandler(zones, records []string, aliasTTL uint32, addrs func(fqdn string) []netip.Addr) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		zone := ""
		for _, z := range zones {
			if dns.IsSubDomain(z, name) && len(z) > len(zone) {
				zone = z
			}
		}
		if zone == "" {
			m.Rcode = dns.RcodeRefused
			_ = w.WriteMsg(m)
			return
		}
		m.Authoritative = true
		isRecord, below := false, false
		for _, rec := range records {
			isRecord = isRecord || rec == name
			below = below || (rec != name && dns.IsSubDomain(name, rec))
		}
		var ips []netip.Addr
		if isRecord {
			ips = addrs(name)
		}
		switch {
		case name == zone && q.Qtype == dns.TypeSOA:
			m.Answer = append(m.Answer, route53SOA(zone))
		case name == zone && q.Qtype == dns.TypeNS:
			for _, ns := range route53NameServers {
				m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS,
					Class: dns.ClassINET, Ttl: route53NSTTL}, Ns: ns})
			}
		case q.Qtype == dns.TypeA:
			for _, ip := range ips {
				if !ip.Is4() {
					continue
				}
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA,
					Class: dns.ClassINET, Ttl: aliasTTL}, A: ip.AsSlice()})
			}
		}
		if len(m.Answer) == 0 {
			if !isRecord && !below && name != zone {
				m.Rcode = dns.RcodeNameError
			}
			m.Ns = append(m.Ns, route53SOA(zone))
		}
		_ = w.WriteMsg(m)
	})
}
