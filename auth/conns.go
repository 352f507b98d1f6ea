package auth

import (
	"crypto/tls"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Conns shares connections to authorization services between the
// configurations that use them, so that a reload does not drop warm
// connections: one gRPC ClientConn per address and TLS settings, one HTTP
// transport per TLS settings. Each is counted by the Ext values holding it
// and closed when the last one lets go (see Ext.Stop), so an address that
// no configuration uses any more has no connection left open. The data
// plane owns one for its lifetime; the zero value is ready to use.
type Conns struct {
	mu   sync.Mutex
	grpc map[string]*counted[*grpc.ClientConn]
	http map[string]*counted[*http.Client]
}

// counted is a shared value and the number of holders.
type counted[T any] struct {
	v    T
	refs int
}

// take returns m[key] with one more holder, or adds one made by open.
func take[T any](m *map[string]*counted[T], key string, open func() (T, error)) (T, error) {
	if s := (*m)[key]; s != nil {
		s.refs++
		return s.v, nil
	}
	v, err := open()
	if err != nil {
		return v, err
	}
	if *m == nil {
		*m = map[string]*counted[T]{}
	}
	(*m)[key] = &counted[T]{v: v, refs: 1}
	return v, nil
}

// drop removes one holder of m[key]; with the last it removes the entry
// and returns its value for closing.
func drop[T any](m map[string]*counted[T], key string) (v T, last bool) {
	s := m[key]
	if s == nil {
		return v, false
	}
	if s.refs--; s.refs > 0 {
		return v, false
	}
	delete(m, key)
	return s.v, true
}

// grpcConn returns a counted connection to addr, over TLS when cfg is set
// (tlsKey names cfg's content).
func (p *Conns) grpcConn(addr, tlsKey string, cfg *tls.Config) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return take(&p.grpc, addr+"|"+tlsKey, func() (*grpc.ClientConn, error) {
		creds := insecure.NewCredentials()
		if cfg != nil {
			creds = credentials.NewTLS(cfg.Clone())
		}
		return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	})
}

// releaseGRPC drops one reference taken by grpcConn, closing the
// connection with the last.
func (p *Conns) releaseGRPC(addr, tlsKey string) {
	p.mu.Lock()
	cc, last := drop(p.grpc, addr+"|"+tlsKey)
	p.mu.Unlock()
	if last {
		cc.Close()
	}
}

// httpClient returns a counted client for HTTP checks, speaking TLS when
// cfg is set.
func (p *Conns) httpClient(tlsKey string, cfg *tls.Config) *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, _ := take(&p.http, tlsKey, func() (*http.Client, error) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
		if cfg != nil {
			c := cfg.Clone()
			c.NextProtos = []string{"http/1.1"}
			tr.TLSClientConfig = c
		}
		return &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}, nil
	})
	return c
}

// releaseHTTP drops one reference taken by httpClient, closing the
// transport's idle connections with the last.
func (p *Conns) releaseHTTP(tlsKey string) {
	p.mu.Lock()
	c, last := drop(p.http, tlsKey)
	p.mu.Unlock()
	if last {
		c.CloseIdleConnections()
	}
}

// open counts the connections of the pool, for tests and the log.
func (p *Conns) open() (grpcConns, httpClients int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.grpc), len(p.http)
}
