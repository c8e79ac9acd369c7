// Package pki makes a lab's certificate authority and the serving
// certificates of its EKS control plane: the API server's, for the cluster
// endpoint name, and the kubelets', for the nodes' addresses. It is made
// at up with crypto/x509 and kept in the lab's state directory (0700, each
// file 0600), which down removes with the rest of the lab.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// File names in the lab's state directory.
const (
	CACert        = "eks-ca.crt"
	CAKey         = "eks-ca.key"
	APIServerCert = "eks-apiserver.crt"
	APIServerKey  = "eks-apiserver.key"
	KubeletCert   = "eks-kubelet.crt"
	KubeletKey    = "eks-kubelet.key"
)

// Validity of the lab's certificates: a lab lives for hours, not years.
const Validity = 30 * 24 * time.Hour

// Files makes a CA and, signed by it, the API server's certificate (the
// endpoint name, "kubernetes" and its service names, and the API server's
// addresses) and one kubelet serving certificate for every node address.
// The result maps file names to PEM contents.
func Files(endpoint string, apiAddrs, nodeAddrs []netip.Addr) (map[string][]byte, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubernetes"}, // EKS's cluster CA's subject
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	out := map[string][]byte{CACert: pemOf("CERTIFICATE", caDER)}
	if out[CAKey], err = keyPEM(caKey); err != nil {
		return nil, err
	}
	leaf := func(cn string, names []string, addrs []netip.Addr, certFile, keyFile string) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(Validity),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     names,
		}
		for _, a := range addrs {
			tpl.IPAddresses = append(tpl.IPAddresses, net.IP(a.AsSlice()))
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("%s certificate: %w", cn, err)
		}
		out[certFile] = pemOf("CERTIFICATE", der)
		out[keyFile], err = keyPEM(k)
		return err
	}
	if err := leaf("kube-apiserver", []string{endpoint, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local"}, apiAddrs, APIServerCert, APIServerKey); err != nil {
		return nil, err
	}
	if err := leaf("kubelet", nil, nodeAddrs, KubeletCert, KubeletKey); err != nil {
		return nil, err
	}
	return out, nil
}

// Pair loads a certificate and key written by Files.
func Pair(files map[string][]byte, certFile, keyFile string) (tls.Certificate, error) {
	return tls.X509KeyPair(files[certFile], files[keyFile])
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

func pemOf(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemOf("EC PRIVATE KEY", der), nil
}
