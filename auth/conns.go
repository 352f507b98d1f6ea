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

// connPool shares connections to authorization services between the
// configurations that use them, so that a reload does not drop warm
// connections: one gRPC ClientConn per address and TLS settings, one HTTP
// transport per TLS settings. Each is counted by the Ext values holding it
// and closed when the last one lets go (see Ext.Stop), so an address that
// no configuration uses any more has no connection left open.
type connPool struct {
	mu   sync.Mutex
	grpc map[string]*sharedGRPC
	http map[string]*sharedHTTP
}

type sharedGRPC struct {
	cc   *grpc.ClientConn
	refs int
}

type sharedHTTP struct {
	client *http.Client
	tr     *http.Transport
	refs   int
}

// defaultConns is the pool every compiled policy uses: connections must
// outlive the configuration that opened them.
var defaultConns = &connPool{}

// grpcConn returns a counted connection to addr, over TLS when cfg is set
// (tlsKey names cfg's content).
func (p *connPool) grpcConn(addr, tlsKey string, cfg *tls.Config) (*grpc.ClientConn, error) {
	key := addr + "|" + tlsKey
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.grpc[key]; s != nil {
		s.refs++
		return s.cc, nil
	}
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg.Clone())
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	if p.grpc == nil {
		p.grpc = map[string]*sharedGRPC{}
	}
	p.grpc[key] = &sharedGRPC{cc: cc, refs: 1}
	return cc, nil
}

// releaseGRPC drops one reference taken by grpcConn, closing the
// connection with the last.
func (p *connPool) releaseGRPC(addr, tlsKey string) {
	key := addr + "|" + tlsKey
	p.mu.Lock()
	s := p.grpc[key]
	if s == nil {
		p.mu.Unlock()
		return
	}
	s.refs--
	if s.refs > 0 {
		p.mu.Unlock()
		return
	}
	delete(p.grpc, key)
	p.mu.Unlock()
	s.cc.Close()
}

// httpClient returns a counted client for HTTP checks, speaking TLS when
// cfg is set.
func (p *connPool) httpClient(tlsKey string, cfg *tls.Config) *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.http[tlsKey]; s != nil {
		s.refs++
		return s.client
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	if cfg != nil {
		c := cfg.Clone()
		c.NextProtos = []string{"http/1.1"}
		tr.TLSClientConfig = c
	}
	s := &sharedHTTP{tr: tr, refs: 1, client: &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
	if p.http == nil {
		p.http = map[string]*sharedHTTP{}
	}
	p.http[tlsKey] = s
	return s.client
}

// releaseHTTP drops one reference taken by httpClient, closing the
// transport's idle connections with the last.
func (p *connPool) releaseHTTP(tlsKey string) {
	p.mu.Lock()
	s := p.http[tlsKey]
	if s == nil {
		p.mu.Unlock()
		return
	}
	s.refs--
	if s.refs > 0 {
		p.mu.Unlock()
		return
	}
	delete(p.http, tlsKey)
	p.mu.Unlock()
	s.tr.CloseIdleConnections()
}

// open counts the connections of the pool, for tests and the log.
func (p *connPool) open() (grpcConns, httpClients int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.grpc), len(p.http)
}
