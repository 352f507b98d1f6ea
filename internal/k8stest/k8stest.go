// Package k8stest runs a real Kubernetes control plane (etcd, kube-apiserver
// and optionally kube-controller-manager) on loopback for tests. It is
// imported only by _test.go files.
//
// The binaries are not downloaded: scripts/k8s-tools.sh (run by `make
// test-deps`) builds them from Go modules once per machine into
// ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}/NAME-VERSION/NAME. A missing
// binary fails the test; it is never skipped.
//
// Each ControlPlane has its own temp dir, its own free ports, its own CA and
// an admin bearer token (group system:masters); authorization is RBAC, so
// other identities can be tested against real RBAC manifests. Set
// MESHGATE_K8STEST_KEEP=1 to keep the dir (data and logs) after the test.
package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Versions of the cached binaries (see scripts/k8s-tools.sh).
const (
	KubernetesVersion = "v1.36.3"
	EtcdVersion       = "v3.6.16"
)

// startTimeout bounds each readiness wait (etcd, apiserver, controller
// manager, CRDs).
const startTimeout = 60 * time.Second

// DefaultControllers are the kube-controller-manager controllers run when
// Options.ControllerManager is set and Options.Controllers is empty.
var DefaultControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"pod-garbage-collector-controller",
}

// Options selects what Start runs and installs.
type Options struct {
	// ControllerManager also runs kube-controller-manager (Controllers, or
	// DefaultControllers). Without it, namespaces are never finalized and
	// the ServiceAccount admission plugin is disabled (no controller would
	// create the "default" ServiceAccount that pods need).
	ControllerManager bool
	// Controllers overrides DefaultControllers.
	Controllers []string
	// CRDs installs the Gateway API experimental-channel bundle of the
	// gateway-api module version linked into the test (v1.6.3), from the Go
	// module cache, and Meshgate's api/crds/*.yaml, and waits until every CRD
	// is Established.
	CRDs bool
}

// ControlPlane is a real etcd + kube-apiserver (and optionally
// kube-controller-manager) on free loopback ports in a temp dir.
type ControlPlane struct {
	// Config reaches the apiserver as the admin user (system:masters).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same identity.
	Kubeconfig string
	// Dir holds data, certificates, the token file and the logs
	// (etcd.log, kube-apiserver.log, kube-controller-manager.log).
	Dir string
	// Token is the admin bearer token.
	Token string
	// EtcdURL is etcd's client URL.
	EtcdURL string

	t       testing.TB
	pki     *pki
	apiArgs []string
	apiBin  string
	apiPort int

	mu        sync.Mutex
	etcd      *proc
	apiserver *proc
	kcm       *proc
}

// ToolPath returns the cached path of a binary built by scripts/k8s-tools.sh.
func ToolPath(name, version string) string {
	tools := os.Getenv("MESHGATE_TOOLS")
	if tools == "" {
		home, _ := os.UserHomeDir()
		tools = filepath.Join(home, ".cache", "meshgate")
	}
	return filepath.Join(tools, name+"-"+version, name)
}

func needTool(t testing.TB, name, version string) string {
	t.Helper()
	p := ToolPath(name, version)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("k8stest: %s %s not found at %s: run make test-deps (scripts/k8s-tools.sh builds it)", name, version, p)
	}
	return p
}

// Start runs a control plane for the test, and stops it and removes its dir
// when the test ends. It fails the test if a binary is missing or anything
// is not ready within 60 s.
func Start(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	etcdBin := needTool(t, "etcd", EtcdVersion)
	apiBin := needTool(t, "kube-apiserver", KubernetesVersion)
	var kcmBin string
	if opts.ControllerManager {
		kcmBin = needTool(t, "kube-controller-manager", KubernetesVersion)
	}

	dir, err := os.MkdirTemp("", "k8stest-")
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	c := &ControlPlane{Dir: dir, t: t, apiBin: apiBin}
	t.Cleanup(c.cleanup)

	if c.pki, err = writePKI(dir); err != nil {
		t.Fatalf("k8stest: certificates: %v", err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatalf("k8stest: %v", err)
	}

	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("k8stest: free port: %v", err)
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.apiPort = apiPort

	// etcd.
	c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	c.etcd, err = startProc("etcd", etcdBin, filepath.Join(dir, "etcd.log"), []string{
		"--name=k8stest",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + c.EtcdURL,
		"--advertise-client-urls=" + c.EtcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=k8stest=" + peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	})
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	if err := waitHTTP(c.etcd, c.EtcdURL+"/health", nil, ""); err != nil {
		t.Fatalf("k8stest: etcd not healthy: %v (log: %s)", err, filepath.Join(dir, "etcd.log"))
	}

	// kube-apiserver.
	c.apiArgs = []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + c.pki.saPubFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if !opts.ControllerManager {
		c.apiArgs = append(c.apiArgs, "--disable-admission-plugins=ServiceAccount")
	}
	c.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM},
		QPS:             100,
		Burst:           200,
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := c.writeKubeconfig(); err != nil {
		t.Fatalf("k8stest: kubeconfig: %v", err)
	}
	if err := c.startAPIServer(); err != nil {
		t.Fatalf("k8stest: %v", err)
	}

	if opts.CRDs {
		files, err := crdFiles()
		if err != nil {
			t.Fatalf("k8stest: CRDs: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := InstallManifests(ctx, c.Client(t), files...); err != nil {
			t.Fatalf("k8stest: CRDs: %v", err)
		}
	}

	if opts.ControllerManager {
		controllers := opts.Controllers
		if len(controllers) == 0 {
			controllers = DefaultControllers
		}
		// Its port is chosen right before it starts, and again if another
		// socket took it meanwhile: one chosen with the others above can be
		// handed to a client connection first ("bind: address already in use").
		kcmLog := filepath.Join(dir, "kube-controller-manager.log")
		for attempt := 1; ; attempt++ {
			kcmPort, err := freePort()
			if err != nil {
				t.Fatalf("k8stest: free port: %v", err)
			}
			c.kcm, err = startProc("kube-controller-manager", kcmBin, kcmLog, []string{
				"--kubeconfig=" + c.Kubeconfig,
				"--authentication-kubeconfig=" + c.Kubeconfig,
				"--authorization-kubeconfig=" + c.Kubeconfig,
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(kcmPort),
				"--cert-dir=" + filepath.Join(dir, "kcm-certs"),
				"--controllers=" + strings.Join(controllers, ","),
				"--service-account-private-key-file=" + c.pki.saKeyFile,
				"--root-ca-file=" + c.pki.caFile,
				"--use-service-account-credentials=false",
				"--leader-elect=false",
				"--profiling=false",
			})
			if err != nil {
				t.Fatalf("k8stest: %v", err)
			}
			insecure := &tls.Config{InsecureSkipVerify: true} // KCM's own self-signed cert
			err = waitHTTP(c.kcm, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", insecure, "")
			if err == nil {
				break
			}
			c.kcm.stop()
			if attempt == 3 || !strings.Contains(tail(kcmLog, 5), "address already in use") {
				t.Fatalf("k8stest: kube-controller-manager not healthy: %v", err)
			}
		}
	}
	return c
}

func (c *ControlPlane) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["k8stest"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.Token}
	cfg.Contexts["k8stest"] = &clientcmdapi.Context{Cluster: "k8stest", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "k8stest"
	return clientcmd.WriteToFile(*cfg, c.Kubeconfig)
}

func (c *ControlPlane) startAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		if done, _ := c.apiserver.exited(); !done {
			return nil
		}
	}
	p, err := startProc("kube-apiserver", c.apiBin, filepath.Join(c.Dir, "kube-apiserver.log"), c.apiArgs)
	if err != nil {
		return err
	}
	c.apiserver = p
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	if err := waitHTTP(p, c.Config.Host+"/readyz", &tls.Config{RootCAs: pool}, c.Token); err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w (log: %s)", err, filepath.Join(c.Dir, "kube-apiserver.log"))
	}
	return nil
}

// StopAPIServer stops kube-apiserver only (etcd and the controller manager
// keep running), so a test can simulate an API server outage.
func (c *ControlPlane) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiserver.stop()
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, with the
// same etcd, port, certificates and token, and waits for /readyz. It fails
// the test given to Start on error, so call it from that test's goroutine.
func (c *ControlPlane) StartAPIServer() {
	c.t.Helper()
	if err := c.startAPIServer(); err != nil {
		c.t.Fatalf("k8stest: %v", err)
	}
}

// Client returns a controller-runtime client (no cache) for the admin user,
// with the scheme of NewScheme.
func (c *ControlPlane) Client(t testing.TB) client.Client {
	t.Helper()
	s, err := NewScheme()
	if err != nil {
		t.Fatalf("k8stest: scheme: %v", err)
	}
	cl, err := client.New(c.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatalf("k8stest: client: %v", err)
	}
	return cl
}

// Kubectl runs the cached kubectl with --kubeconfig (admin) and a discovery
// cache inside Dir, and returns its stdout. The error includes stderr.
func (c *ControlPlane) Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "kubectl", KubernetesVersion)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *ControlPlane) cleanup() {
	c.mu.Lock()
	c.kcm.stop()
	c.apiserver.stop()
	c.etcd.stop()
	c.mu.Unlock()
	if c.t.Failed() {
		for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
			p := filepath.Join(c.Dir, name+".log")
			if _, err := os.Stat(p); err == nil {
				c.t.Logf("k8stest: last lines of %s:\n%s", p, tail(p, 40))
			}
		}
	}
	if os.Getenv("MESHGATE_K8STEST_KEEP") != "" {
		c.t.Logf("k8stest: kept %s", c.Dir)
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Logf("k8stest: remove %s: %v", c.Dir, err)
	}
}

// waitHTTP polls url until it answers 200, the process exits, or
// startTimeout passes.
func waitHTTP(p *proc, url string, tlsConfig *tls.Config, token string) error {
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
	}
	deadline := time.Now().Add(startTimeout)
	var last string
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited: %v", p.name, err)
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %v: %s", url, startTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
