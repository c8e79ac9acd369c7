package agent

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// fakeWriter is a dns.ResponseWriter that keeps the message written.
type fakeWriter struct{ msg *dns.Msg }

func (f *fakeWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(198, 51, 100, 53), Port: 53}
}
func (f *fakeWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(198, 51, 100, 20), Port: 5353}
}
func (f *fakeWriter) WriteMsg(m *dns.Msg) error   { f.msg = m; return nil }
func (f *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (f *fakeWriter) Close() error                { return nil }
func (f *fakeWriter) TsigStatus() error           { return nil }
func (f *fakeWriter) TsigTimersOnly(bool)         {}
func (f *fakeWriter) Hijack()                     {}

func askZone(t *testing.T, h dns.Handler, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	w := &fakeWriter{}
	h.ServeDNS(w, q)
	if w.msg == nil {
		t.Fatalf("%s %s: no answer written", name, dns.TypeToString[qtype])
	}
	return w.msg
}

func testZone() dns.Handler {
	recs := map[string][]netip.Addr{
		"portal.example.com.":   {netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")},
		"down.example.com.":     nil, // an alias whose load balancer has no node in DNS
		"api.shop.example.com.": {netip.MustParseAddr("203.0.113.12")},
	}
	var names []string
	for n := range recs {
		names = append(names, n)
	}
	return zoneHandler([]string{"example.com.", "shop.example.com."}, names, 60,
		func(n string) []netip.Addr { return recs[n] })
}

// wantSOA checks the authority section holds exactly the zone's Route 53 SOA.
func wantSOA(t *testing.T, m *dns.Msg, zone string) {
	t.Helper()
	if len(m.Ns) != 1 {
		t.Fatalf("authority section = %v, want the SOA of %s", m.Ns, zone)
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != zone || soa.Serial != 1 || soa.Refresh != 7200 || soa.Retry != 900 ||
		soa.Expire != 1209600 || soa.Minttl != 86400 || soa.Ns != "ns-2048.awsdns-64.com." {
		t.Fatalf("authority = %v, want Route 53's SOA for %s", m.Ns[0], zone)
	}
}

func TestRoute53ApexAnswersSOAAndFourAwsdnsNS(t *testing.T) {
	h := testZone()
	m := askZone(t, h, "example.com.", dns.TypeSOA)
	if m.Rcode != dns.RcodeSuccess || !m.Authoritative || len(m.Answer) != 1 {
		t.Fatalf("SOA at apex: rcode %s aa %v answer %v", dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
	}
	soa, ok := m.Answer[0].(*dns.SOA)
	if !ok || soa.Serial != 1 || soa.Refresh != 7200 || soa.Retry != 900 || soa.Expire != 1209600 || soa.Minttl != 86400 {
		t.Fatalf("SOA at apex = %v, want serial 1, 7200 900 1209600 86400", m.Answer[0])
	}
	m = askZone(t, h, "EXAMPLE.com.", dns.TypeNS)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 4 {
		t.Fatalf("NS at apex: rcode %s answer %v, want 4 awsdns servers", dns.RcodeToString[m.Rcode], m.Answer)
	}
	for i, rr := range m.Answer {
		if ns, ok := rr.(*dns.NS); !ok || ns.Ns != route53NameServers[i] {
			t.Errorf("NS %d = %v, want %s", i, rr, route53NameServers[i])
		}
	}
	// A at the apex, where there is no A record: NODATA with the SOA.
	m = askZone(t, h, "example.com.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Fatalf("A at apex: rcode %s answer %v, want NOERROR/NODATA", dns.RcodeToString[m.Rcode], m.Answer)
	}
	wantSOA(t, m, "example.com.")
}

func TestRoute53AliasAnswersAWithTTL60AndNoAuthority(t *testing.T) {
	m := askZone(t, testZone(), "Portal.Example.COM.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 || len(m.Ns) != 0 {
		t.Fatalf("A portal: rcode %s answer %v ns %v", dns.RcodeToString[m.Rcode], m.Answer, m.Ns)
	}
	for _, rr := range m.Answer {
		if rr.Header().Ttl != 60 || rr.Header().Name != "Portal.Example.COM." {
			t.Errorf("answer %v: want TTL 60 and the question's name", rr)
		}
	}
}

func TestRoute53EmptyAnswerIsNODATAWithSOA(t *testing.T) {
	h := testZone()
	for _, c := range []struct {
		name  string
		qtype uint16
		zone  string
	}{
		{"portal.example.com.", dns.TypeAAAA, "example.com."},
		{"portal.example.com.", dns.TypeMX, "example.com."},
		{"down.example.com.", dns.TypeA, "example.com."},
		// shop.example.com. is a zone of its own (the longest one wins).
		{"api.shop.example.com.", dns.TypeAAAA, "shop.example.com."},
	} {
		m := askZone(t, h, c.name, c.qtype)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
			t.Fatalf("%s %s: rcode %s answer %v, want NOERROR/NODATA", c.name, dns.TypeToString[c.qtype],
				dns.RcodeToString[m.Rcode], m.Answer)
		}
		wantSOA(t, m, c.zone)
	}
}

func TestRoute53EmptyNonTerminalIsNODATANotNXDOMAIN(t *testing.T) {
	h := zoneHandler([]string{"example.com."}, []string{"a.b.example.com."}, 60,
		func(string) []netip.Addr { return []netip.Addr{netip.MustParseAddr("203.0.113.1")} })
	m := askZone(t, h, "b.example.com.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Fatalf("b.example.com A: rcode %s answer %v, want NODATA", dns.RcodeToString[m.Rcode], m.Answer)
	}
	wantSOA(t, m, "example.com.")
}

func TestRoute53UnknownNameInZoneIsNXDOMAINWithSOA(t *testing.T) {
	m := askZone(t, testZone(), "nope.example.com.", dns.TypeA)
	if m.Rcode != dns.RcodeNameError || !m.Authoritative || len(m.Answer) != 0 {
		t.Fatalf("nope.example.com: rcode %s aa %v answer %v, want authoritative NXDOMAIN",
			dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
	}
	wantSOA(t, m, "example.com.")
}

func TestRoute53NameOutsideItsZonesIsRefused(t *testing.T) {
	m := askZone(t, testZone(), "example.org.", dns.TypeA)
	if m.Rcode != dns.RcodeRefused || m.Authoritative || len(m.Ns) != 0 {
		t.Fatalf("example.org: rcode %s aa %v ns %v, want REFUSED", dns.RcodeToString[m.Rcode], m.Authoritative, m.Ns)
	}
}

func TestRoute53NoQuestionIsFormErrNotPanic(t *testing.T) {
	w := &fakeWriter{}
	testZone().ServeDNS(w, new(dns.Msg))
	if w.msg == nil || w.msg.Rcode != dns.RcodeFormatError {
		t.Fatalf("empty query: %v, want FORMERR", w.msg)
	}
}

func TestHostedZoneOfDropsFirstLabelButNotToATLD(t *testing.T) {
	for in, want := range map[string]string{
		"portal.example.com":    "example.com.",
		"Api.Shop.Example.com.": "shop.example.com.",
		"example.com.":          "example.com.",
		"localhost.":            "localhost.",
	} {
		if got := hostedZoneOf(in); got != want {
			t.Errorf("hostedZoneOf(%q) = %q, want %q", in, got, want)
		}
	}
}
