// Package cluster runs the control plane the conformance suite needs (etcd,
// kube-apiserver, kube-controller-manager) on free loopback ports, installs
// the Gateway API experimental CRDs and Meshgate's CRDs, and starts the
// gateway binary. It is adapted from internal/k8stest, which this nested
// module cannot import.
//
// The binaries are not downloaded: scripts/k8s-tools.sh (make test-deps)
// builds them once per machine into
// ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}/NAME-VERSION/NAME.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Versions of the cached binaries (see scripts/k8s-tools.sh).
const (
	KubernetesVersion = "v1.36.3"
	EtcdVersion       = "v3.6.16"
	// GatewayAPIVersion is the CRD bundle installed; it must equal the
	// suite's consts.BundleVersion (the test checks).
	GatewayAPIVersion = "v1.6.3"
)

const startTimeout = 90 * time.Second

// Controllers run by kube-controller-manager (docs/conformance.md §4.2).
var Controllers = []string{
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

// Cluster is a running control plane.
type Cluster struct {
	Dir        string
	Kubeconfig string
	Config     *rest.Config
	Token      string

	procs []*proc
}

// ToolsDir is ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}.
func ToolsDir() string {
	if d := os.Getenv("MESHGATE_TOOLS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "meshgate")
}

// ToolPath returns the cached path of a binary.
func ToolPath(name, version string) string {
	return filepath.Join(ToolsDir(), name+"-"+version, name)
}

func needTool(name, version string) (string, error) {
	p := ToolPath(name, version)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s %s not found at %s: run make test-deps (scripts/k8s-tools.sh builds it)", name, version, p)
	}
	return p, nil
}

// Start runs etcd, kube-apiserver and kube-controller-manager with their
// data and logs in dir, and installs the CRDs (Gateway API experimental
// channel from the module cache, and repoRoot/api/crds/*.yaml). Stop ends
// them.
func Start(dir, repoRoot string) (_ *Cluster, err error) {
	etcdBin, err := needTool("etcd", EtcdVersion)
	if err != nil {
		return nil, err
	}
	apiBin, err := needTool("kube-apiserver", KubernetesVersion)
	if err != nil {
		return nil, err
	}
	kcmBin, err := needTool("kube-controller-manager", KubernetesVersion)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	pki, err := writePKI(dir)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd, err := startProc("etcd", etcdBin, filepath.Join(dir, "etcd.log"), []string{
		"--name=conformance",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=conformance=" + peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}, nil)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, etcd)
	if err := waitHTTP(etcd, etcdURL+"/health", nil, ""); err != nil {
		return nil, fmt.Errorf("etcd not healthy: %w", err)
	}

	apiserver, err := startProc("kube-apiserver", apiBin, filepath.Join(dir, "kube-apiserver.log"), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + pki.certFile,
		"--tls-private-key-file=" + pki.keyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saPubFile,
		"--service-account-signing-key-file=" + pki.saKeyFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		// pods/log is proxied to the node agent's kubelet endpoint (its
		// InternalIP); its self-signed serving certificate is not verified
		// because --kubelet-certificate-authority is not set.
		"--kubelet-preferred-address-types=InternalIP",
	}, nil)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, apiserver)
	c.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM},
		QPS:             200,
		Burst:           400,
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := c.writeKubeconfig(pki.caPEM); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	if err := waitHTTP(apiserver, c.Config.Host+"/readyz", &tls.Config{RootCAs: pool}, c.Token); err != nil {
		return nil, fmt.Errorf("kube-apiserver not ready: %w (log: %s)", err, filepath.Join(dir, "kube-apiserver.log"))
	}

	files, err := crdFiles(repoRoot)
	if err != nil {
		return nil, err
	}
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := InstallManifests(ctx, cl, files...); err != nil {
		return nil, fmt.Errorf("CRDs: %w", err)
	}

	// kube-controller-manager's port is chosen right before it starts, and
	// again if another socket took it meanwhile: one chosen with the others
	// above was once handed to a client connection during the CRD install
	// ("bind: address already in use").
	kcmLog := filepath.Join(dir, "kube-controller-manager.log")
	for attempt := 1; ; attempt++ {
		kcmPort, err := freePort()
		if err != nil {
			return nil, err
		}
		kcm, err := startProc("kube-controller-manager", kcmBin, kcmLog, []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(kcmPort),
			"--cert-dir=" + filepath.Join(dir, "kcm-certs"),
			"--controllers=" + strings.Join(Controllers, ","),
			"--service-account-private-key-file=" + pki.saKeyFile,
			"--root-ca-file=" + pki.caFile,
			"--use-service-account-credentials=false",
			"--leader-elect=false",
			"--profiling=false",
			// Small batching delays: EndpointSlices follow pod readiness fast.
			"--endpointslice-updates-batch-period=0s",
		}, nil)
		if err != nil {
			return nil, err
		}
		insecure := &tls.Config{InsecureSkipVerify: true} // KCM's own self-signed cert
		err = waitHTTP(kcm, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", insecure, "")
		if err == nil {
			c.procs = append(c.procs, kcm)
			break
		}
		kcm.stop()
		if attempt == 3 || !strings.Contains(tail(kcmLog, 5), "address already in use") {
			return nil, fmt.Errorf("kube-controller-manager not healthy: %w", err)
		}
	}
	return c, nil
}

// Process is a child process started by StartProcess.
type Process = proc

// StartProcess runs binary with args and env (appended to this process's
// environment), logging to logPath; it dies with the test binary.
func StartProcess(name, binary, logPath string, args, env []string) (*Process, error) {
	return startProc(name, binary, logPath, args, env)
}

// Stop stops the process (SIGTERM, then SIGKILL after 10 s).
func (p *proc) Stop() { p.stop() }

// Exited reports whether the process has exited, and how.
func (p *proc) Exited() (bool, error) { return p.exited() }

// Stop ends the control plane, newest process first.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	c.procs = nil
}

// Client returns a controller-runtime client (no cache) for the admin user.
func (c *Cluster) Client() (client.Client, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return client.New(c.Config, client.Options{Scheme: s})
}

func (c *Cluster) writeKubeconfig(caPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["conformance"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.Token}
	cfg.Contexts["conformance"] = &clientcmdapi.Context{Cluster: "conformance", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "conformance"
	return clientcmd.WriteToFile(*cfg, c.Kubeconfig)
}

// GoModCache returns the Go module cache directory.
func GoModCache() (string, error) {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			return d, nil
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "go", "pkg", "mod"), nil
}

// GatewayAPICRDDir is config/crd/experimental of sigs.k8s.io/gateway-api at
// GatewayAPIVersion in the module cache.
func GatewayAPICRDDir() (string, error) {
	mc, err := GoModCache()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mc, "sigs.k8s.io", "gateway-api@"+GatewayAPIVersion, "config", "crd", "experimental")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway API CRDs not found (%v); run `go mod download sigs.k8s.io/gateway-api@%s`", err, GatewayAPIVersion)
	}
	return dir, nil
}

func crdFiles(repoRoot string) ([]string, error) {
	gwDir, err := GatewayAPICRDDir()
	if err != nil {
		return nil, err
	}
	kust, err := os.ReadFile(filepath.Join(gwDir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kust, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", gwDir, err)
	}
	if len(k.Resources) == 0 {
		return nil, fmt.Errorf("%s/kustomization.yaml lists no resources", gwDir)
	}
	var files []string
	for _, r := range k.Resources {
		files = append(files, filepath.Join(gwDir, r))
	}
	own, err := filepath.Glob(filepath.Join(repoRoot, "api", "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(own) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/api/crds", repoRoot)
	}
	sort.Strings(own)
	return append(files, own...), nil
}

// ReadManifests decodes every YAML document of the files.
func ReadManifests(files []string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(m) == 0 {
				continue
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs, nil
}

// InstallManifests creates every object of the files (existing ones are
// left alone) and waits until each CRD among them is Established.
func InstallManifests(ctx context.Context, c client.Client, files ...string) error {
	objs, err := ReadManifests(files)
	if err != nil {
		return err
	}
	var crds []string
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o.GetName())
		}
	}
	for _, name := range crds {
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			err := c.Get(ctx, client.ObjectKey{Name: name}, &crd)
			established := false
			if err == nil {
				for _, cond := range crd.Status.Conditions {
					if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
						established = true
					}
				}
			}
			if established {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not Established: %w (last error: %v)", name, ctx.Err(), err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// WaitHTTP polls url until it answers 200, p exits, or timeout passes.
func WaitHTTP(p *Process, url string, timeout time.Duration) error {
	return waitHTTPTimeout(p, url, nil, "", timeout)
}

func waitHTTP(p *proc, url string, tlsConfig *tls.Config, token string) error {
	return waitHTTPTimeout(p, url, tlsConfig, token, startTimeout)
}

func waitHTTPTimeout(p *proc, url string, tlsConfig *tls.Config, token string, timeout time.Duration) error {
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
	}
	deadline := time.Now().Add(timeout)
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
			return fmt.Errorf("%s: not ready after %v: %s", url, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return freePort() }

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string { return tail(path, n) }
