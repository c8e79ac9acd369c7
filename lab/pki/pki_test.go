package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"testing"
)

func TestAPIServerCertificateVerifiesForTheEndpointNameAgainstTheLabCA(t *testing.T) {
	const endpoint = "0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com"
	files, err := Files(endpoint, []netip.Addr{netip.MustParseAddr("192.168.1.100")}, []netip.Addr{netip.MustParseAddr("192.168.1.11")})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(files[CACert]) {
		t.Fatal("the CA file holds no certificate")
	}
	parse := func(name string) *x509.Certificate {
		b, _ := pem.Decode(files[name])
		if b == nil {
			t.Fatalf("%s holds no PEM block", name)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	api := parse(APIServerCert)
	for _, name := range []string{endpoint, "kubernetes.default.svc", "192.168.1.100"} {
		if _, err := api.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("API server certificate for %s: %v", name, err)
		}
	}
	if _, err := api.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.eks.amazonaws.com"}); err == nil {
		t.Error("API server certificate verifies for a name it was not made for")
	}
	if _, err := parse(KubeletCert).Verify(x509.VerifyOptions{Roots: roots, DNSName: "192.168.1.11"}); err != nil {
		t.Errorf("kubelet certificate: %v", err)
	}
	if _, err := Pair(files, APIServerCert, APIServerKey); err != nil {
		t.Errorf("API server key does not match its certificate: %v", err)
	}
	// Another lab's CA does not vouch for this lab's API server.
	other, _ := Files(endpoint, nil, nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(other[CACert])
	if _, err := api.Verify(x509.VerifyOptions{Roots: pool, DNSName: endpoint}); err == nil {
		t.Error("API server certificate verifies against another lab's CA")
	}
}
