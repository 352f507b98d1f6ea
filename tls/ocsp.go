package tls

import (
	"bytes"
	"context"
	ctls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Stapler keeps an OCSP response for every Secret and file certificate that
// names an OCSP responder (and comes with its issuer in the chain), so
// clients get the revocation status in the handshake (OCSP stapling)
// instead of asking the CA themselves. Responses are fetched in the
// background by Run, when a certificate first appears and again halfway
// through each response's validity; a handshake only reads the latest one.
// A responder that is down costs nothing but the staple: the certificate is
// served without one (or with the previous response while it is valid) and
// a WARN line says why. ACME certificates are stapled by certmagic.
//
// Entries are shared by every Store holding the same certificate, so a
// reload that keeps a certificate keeps its staple, and dropped when the
// last such Store is garbage collected.
type Stapler struct {
	// Client sends OCSP requests (one with a 10 s timeout when nil).
	Client *http.Client
	// Log receives fetch failures.
	Log *slog.Logger
	// RetryInterval is how soon a failed fetch is retried (1 min when
	// zero); MinRefresh the shortest wait between two fetches of a
	// certificate whose responses are valid briefly (1 min when zero).
	RetryInterval, MinRefresh time.Duration

	mu      sync.Mutex
	entries map[string]*stapleEntry // by the leaf's DER
	wake    chan struct{}
}

// stapleEntry is one certificate's OCSP state.
type stapleEntry struct {
	base         *ctls.Certificate // as parsed, without a staple
	leaf, issuer *x509.Certificate
	refs         int       // Stores holding it; guarded by Stapler.mu
	next         time.Time // when to fetch; guarded by Stapler.mu
	// current is what handshakes get: base, or a copy with a staple.
	current atomic.Pointer[ctls.Certificate]
	// validUntil is the NextUpdate of the stapled response; Run only.
	validUntil time.Time
}

func (s *Stapler) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (s *Stapler) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Staple makes st staple the certificates of s that name an OCSP
// responder. Call it before s serves handshakes (it is not safe to call
// concurrently with Certificate); a nil st does nothing.
func (s *Store) Staple(st *Stapler) {
	if st == nil {
		return
	}
	var keys []string
	for _, c := range s.names.values() {
		if _, done := s.staples[c]; done {
			continue
		}
		e := st.acquire(c)
		if e == nil {
			continue
		}
		if s.staples == nil {
			s.staples = map[*ctls.Certificate]*stapleEntry{}
		}
		s.staples[c] = e
		keys = append(keys, string(e.leaf.Raw))
	}
	if len(keys) > 0 {
		runtime.AddCleanup(s, st.release, keys)
	}
}

// stapled is the certificate to serve for c: with its latest staple.
func (s *Store) stapled(c *ctls.Certificate) *ctls.Certificate {
	if e := s.staples[c]; e != nil {
		return e.current.Load()
	}
	return c
}

// acquire returns the entry of c's leaf, creating it (due at once), or nil
// when c cannot be stapled.
func (st *Stapler) acquire(c *ctls.Certificate) *stapleEntry {
	if len(c.Certificate) < 2 {
		return nil // no issuer to build the request with
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil
		}
	}
	if len(leaf.OCSPServer) == 0 {
		return nil
	}
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.entries == nil {
		st.entries = map[string]*stapleEntry{}
		st.wake = make(chan struct{}, 1)
	}
	e := st.entries[string(leaf.Raw)]
	if e == nil {
		e = &stapleEntry{base: c, leaf: leaf, issuer: issuer}
		e.current.Store(c)
		st.entries[string(leaf.Raw)] = e
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
	e.refs++
	return e
}

// release drops the entries a garbage-collected Store held, once no
// other Store holds them.
func (st *Stapler) release(keys []string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, k := range keys {
		if e := st.entries[k]; e != nil {
			if e.refs--; e.refs <= 0 {
				delete(st.entries, k)
			}
		}
	}
}

// tracked is the number of certificates being stapled (tests).
func (st *Stapler) tracked() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.entries)
}

// Run fetches responses until ctx ends.
func (st *Stapler) Run(ctx context.Context) {
	st.mu.Lock()
	if st.wake == nil {
		st.entries = map[string]*stapleEntry{}
		st.wake = make(chan struct{}, 1)
	}
	wake := st.wake
	st.mu.Unlock()
	for {
		now := time.Now()
		var due []*stapleEntry
		next := now.Add(time.Hour)
		st.mu.Lock()
		for _, e := range st.entries {
			if !e.next.After(now) {
				due = append(due, e)
			} else if e.next.Before(next) {
				next = e.next
			}
		}
		st.mu.Unlock()
		for _, e := range due {
			at := st.refresh(ctx, e)
			st.mu.Lock()
			e.next = at
			if at.Before(next) {
				next = at
			}
			st.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// refresh fetches e's response and returns when to fetch again.
func (st *Stapler) refresh(ctx context.Context, e *stapleEntry) time.Time {
	now := time.Now()
	raw, resp, err := st.fetch(ctx, e.leaf, e.issuer)
	switch {
	case err == nil && resp.Status == ocsp.Good:
		c := *e.base
		c.OCSPStaple = raw
		e.current.Store(&c)
		e.validUntil = resp.NextUpdate
		st.log().Debug("OCSP staple fetched", "certificate", subject(e.leaf), "next_update", resp.NextUpdate)
		at := now.Add(time.Hour)
		if !resp.NextUpdate.IsZero() {
			at = resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
		}
		return later(at, now.Add(orDefault(st.MinRefresh, time.Minute)))
	case err == nil:
		// Revoked or unknown: never staple that as good; drop any
		// older good response.
		e.current.Store(e.base)
		e.validUntil = time.Time{}
		st.log().Error("OCSP responder does not vouch for a served certificate: serving it without a staple",
			"certificate", subject(e.leaf), "responder", e.leaf.OCSPServer[0], "status", ocspStatus(resp.Status))
	default:
		if !e.validUntil.IsZero() && now.After(e.validUntil) {
			e.current.Store(e.base)
			e.validUntil = time.Time{}
		}
		st.log().Warn("OCSP staple fetch failed: serving the certificate with its last valid staple or none",
			"certificate", subject(e.leaf), "responder", e.leaf.OCSPServer[0], "error", err.Error())
	}
	return now.Add(orDefault(st.RetryInterval, time.Minute))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fetch asks leaf's responder for its status and verifies the answer
// against issuer.
func (st *Stapler) fetch(ctx context.Context, leaf, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	reqDER, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("building the OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(reqDER))
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP request: %w", err)
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	res, err := st.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP request: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("OCSP responder answered %s", res.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the OCSP response: %w", err)
	}
	resp, err := ocsp.ParseResponseForCert(raw, leaf, issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP response: %w", err)
	}
	if !resp.NextUpdate.IsZero() && time.Now().After(resp.NextUpdate) {
		return nil, nil, errors.New("OCSP response is already out of date")
	}
	return raw, resp, nil
}

func subject(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

func ocspStatus(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}
