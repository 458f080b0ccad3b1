package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Lifetimes of the self-managed certificates, and how long before expiry
// they are replaced.
const (
	caLifetime      = 5 * 365 * 24 * time.Hour
	servingLifetime = 365 * 24 * time.Hour
	caRenewBefore   = 365 * 24 * time.Hour
	serveRenewAfter = 2 * servingLifetime / 3
	certCheckEvery  = time.Minute
)

// Keys of the serving certificate Secret.
const (
	secretCert   = corev1.TLSCertKey       // tls.crt
	secretKey    = corev1.TLSPrivateKeyKey // tls.key
	secretCA     = "ca.crt"                // every CA the API server should trust (old and new during a rotation)
	secretCAKey  = "ca.key"
	secretCACert = "ca-signing.crt" // the CA that signs
)

// certSource serves the current certificate to TLS handshakes.
type certSource struct {
	mu     sync.RWMutex
	cert   *tls.Certificate
	bundle []byte // PEM CA bundle for the webhook configuration ("" with --cert-dir)
}

func (c *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cert == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return c.cert, nil
}

func (c *certSource) set(cert *tls.Certificate, bundle []byte) {
	c.mu.Lock()
	c.cert, c.bundle = cert, bundle
	c.mu.Unlock()
}

func (c *certSource) caBundle() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bundle
}

// setupCerts loads or makes the serving certificate and keeps it fresh:
// files of --cert-dir (reloaded when they change: cert-manager renews
// them), an ephemeral CA for --install (this process registers the
// webhook itself), else the Secret --cert-secret, created by the first
// replica and renewed before expiry.
func (s *Server) setupCerts(ctx context.Context) (*certSource, error) {
	src := &certSource{}
	switch {
	case s.cfg.CertDir != "":
		crt, key := filepath.Join(s.cfg.CertDir, "tls.crt"), filepath.Join(s.cfg.CertDir, "tls.key")
		load := func() (time.Time, error) {
			fi, err := os.Stat(crt)
			if err != nil {
				return time.Time{}, err
			}
			c, err := tls.LoadX509KeyPair(crt, key)
			if err != nil {
				return time.Time{}, fmt.Errorf("--cert-dir: %w", err)
			}
			src.set(&c, nil)
			return fi.ModTime(), nil
		}
		mod, err := load()
		if err != nil {
			return nil, err
		}
		go every(ctx, certCheckEvery, func() {
			if fi, err := os.Stat(crt); err == nil && !fi.ModTime().Equal(mod) {
				if m, err := load(); err == nil {
					mod = m
					s.cfg.Log.Info("serving certificate reloaded", "dir", s.cfg.CertDir)
				}
			}
		})
	case s.cfg.Install:
		host, _, err := net.SplitHostPort(s.cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("--listen %q: %w", s.cfg.Listen, err)
		}
		ca, err := newCA(time.Now())
		if err != nil {
			return nil, err
		}
		pair, err := ca.issue(s.hosts(host), time.Now())
		if err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(pair.cert, pair.key)
		if err != nil {
			return nil, err
		}
		src.set(&c, ca.certPEM)
	default:
		if err := s.syncSecret(ctx, src); err != nil {
			return nil, err
		}
		go every(ctx, certCheckEvery, func() {
			if err := s.syncSecret(ctx, src); err != nil {
				s.cfg.Log.Warn("serving certificate", "secret", s.cfg.CertSecret, "error", err)
			}
		})
	}
	return src, nil
}

// hosts are the names the serving certificate covers: the Service's DNS
// names, and with --install the listen host.
func (s *Server) hosts(listenHost string) []string {
	svc, ns := s.cfg.Service, s.cfg.Namespace
	out := []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
	if listenHost == "" || listenHost == "0.0.0.0" || listenHost == "::" {
		listenHost = "127.0.0.1"
	}
	return append(out, listenHost, "localhost")
}

// syncSecret reads the certificate Secret, creates it when missing, renews
// what is due (the serving certificate after two thirds of its life, the
// CA a year before expiry with the old one kept in the bundle), and loads
// the result.
func (s *Server) syncSecret(ctx context.Context, src *certSource) error {
	secrets := s.cs.CoreV1().Secrets(s.cfg.Namespace)
	sec, err := secrets.Get(ctx, s.cfg.CertSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.CertSecret, Namespace: s.cfg.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "archfit"}}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{}}
		if err := s.renew(sec, time.Now()); err != nil {
			return err
		}
		created, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Another replica won the race: use its certificate.
			return s.syncSecret(ctx, src)
		}
		if err != nil {
			return fmt.Errorf("creating secret %s/%s: %w", s.cfg.Namespace, s.cfg.CertSecret, err)
		}
		sec = created
	} else if err != nil {
		return fmt.Errorf("reading secret %s/%s: %w", s.cfg.Namespace, s.cfg.CertSecret, err)
	} else if due(sec.Data, time.Now()) {
		sec = sec.DeepCopy()
		if err := s.renew(sec, time.Now()); err != nil {
			return err
		}
		// The update is guarded by resourceVersion: replicas renewing at
		// once conflict, and the losers load the winner's next round.
		if sec, err = secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("renewing secret %s/%s: %w", s.cfg.Namespace, s.cfg.CertSecret, err)
		}
		s.cfg.Log.Info("serving certificate renewed", "secret", s.cfg.CertSecret)
	}
	c, err := tls.X509KeyPair(sec.Data[secretCert], sec.Data[secretKey])
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", s.cfg.Namespace, s.cfg.CertSecret, err)
	}
	src.set(&c, sec.Data[secretCA])
	return nil
}

// due says whether the certificates in data need renewing at now.
func due(data map[string][]byte, now time.Time) bool {
	leaf, err := firstCert(data[secretCert])
	if err != nil {
		return true
	}
	ca, err := firstCert(data[secretCACert])
	if err != nil {
		return true
	}
	return now.After(leaf.NotBefore.Add(serveRenewAfter)) || now.After(ca.NotAfter.Add(-caRenewBefore))
}

// renew fills sec with a fresh serving certificate, and a new CA when the
// old one is missing or within a year of expiry (both stay in the bundle
// until the old one expires, so the API server trusts either).
func (s *Server) renew(sec *corev1.Secret, now time.Time) error {
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	ca, err := loadCA(sec.Data[secretCACert], sec.Data[secretCAKey])
	if err != nil || now.After(ca.cert.NotAfter.Add(-caRenewBefore)) {
		next, err := newCA(now)
		if err != nil {
			return err
		}
		bundle := append([]byte{}, next.certPEM...)
		if ca != nil && now.Before(ca.cert.NotAfter) {
			bundle = append(bundle, ca.certPEM...)
		}
		ca = next
		sec.Data[secretCACert], sec.Data[secretCAKey], sec.Data[secretCA] = ca.certPEM, ca.keyPEM, bundle
	}
	pair, err := ca.issue(s.hosts(""), now)
	if err != nil {
		return err
	}
	sec.Data[secretCert], sec.Data[secretKey] = pair.cert, pair.key
	return nil
}

type authority struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

type pemPair struct{ cert, key []byte }

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: "archfit-webhook-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caLifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}, nil
}

func loadCA(certPEM, keyPEM []byte) (*authority, error) {
	cert, err := firstCert(certPEM)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no CA key")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

func (a *authority) issue(hosts []string, now time.Time) (pemPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pemPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return pemPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(servingLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return pemPair{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return pemPair{}, err
	}
	return pemPair{cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}, nil
}

func firstCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
