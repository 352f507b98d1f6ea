package nodeagent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// logServer is the node's kubelet endpoint, reduced to what the suite
// uses: GET /containerLogs/{namespace}/{pod}/{container}, which the
// apiserver proxies pods/log to. It honours sinceTime, sinceSeconds,
// timestamps, tailLines and limitBytes; follow is answered with the log so
// far (no streaming). The serving certificate is self-signed; the
// apiserver does not verify it without --kubelet-certificate-authority.
type logServer struct {
	srv *http.Server
}

func startLogServer(a *Agent, addr string) (*logServer, error) {
	cert, err := selfSigned(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		serveLogs(a, w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s := &logServer{srv: &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

func (s *logServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

func serveLogs(a *Agent, w http.ResponseWriter, r *http.Request) {
	path, ok := a.logPath(r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
	if !ok {
		http.Error(w, "container not found", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, "bad sinceTime", http.StatusBadRequest)
			return
		}
		since = t
	}
	if s := q.Get("sinceSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			http.Error(w, "bad sinceSeconds", http.StatusBadRequest)
			return
		}
		since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	timestamps := q.Get("timestamps") == "true" || q.Get("timestamps") == "1"
	tail := -1
	if s := q.Get("tailLines"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			tail = n
		}
	}
	limit := int64(-1)
	if s := q.Get("limitBytes"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			limit = n
		}
	}
	f, err := os.Open(path)
	if err != nil {
		w.Header().Set("Content-Type", "text/plain")
		return // no output yet
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		// "TIME STREAM content"
		parts := strings.SplitN(sc.Text(), " ", 3)
		if len(parts) < 2 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			continue
		}
		if !since.IsZero() && ts.Before(since) {
			continue
		}
		content := ""
		if len(parts) == 3 {
			content = parts[2]
		}
		if timestamps {
			content = parts[0] + " " + content
		}
		lines = append(lines, content)
	}
	if tail >= 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	w.Header().Set("Content-Type", "text/plain")
	var written int64
	for _, l := range lines {
		b := []byte(l + "\n")
		if limit >= 0 && written+int64(len(b)) > limit {
			b = b[:limit-written]
		}
		n, _ := w.Write(b)
		written += int64(n)
		if limit >= 0 && written >= limit {
			break
		}
	}
}

func selfSigned(addr string) (tls.Certificate, error) {
	host, _, _ := net.SplitHostPort(addr)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "meshgate-nodeagent"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
