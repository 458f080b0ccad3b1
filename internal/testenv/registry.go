package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

// RegistryHandler is go-containerregistry's in-memory registry, with Basic
// auth (RegistryUser/RegistryPassword) on repositories under private/, as a
// registry answers an anonymous pull of a private image: 401 and a
// challenge.
func RegistryHandler() http.Handler {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			u, p, ok := r.BasicAuth()
			if !ok || u != RegistryUser || p != RegistryPassword {
				w.Header().Set("WWW-Authenticate", `Basic realm="archfit-testenv"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`)
				return
			}
		}
		reg.ServeHTTP(w, r)
	})
}

func (e *Env) startRegistry() {
	e.registry = httptest.NewServer(RegistryHandler())
	e.Registry = strings.TrimPrefix(e.registry.URL, "http://")
}

func newPool(caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	for {
		var b *pem.Block
		b, caPEM = pem.Decode(caPEM)
		if b == nil {
			return pool
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			pool.AddCert(c)
		}
	}
}
