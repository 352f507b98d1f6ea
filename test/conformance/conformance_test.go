package conformance

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/consts"

	"github.com/meshgate/meshgate/test/conformance/internal/cluster"
	"github.com/meshgate/meshgate/test/conformance/nodeagent"
)

const (
	gatewayClassName = "meshgate"
	controllerName   = "gateway.meshgate.dev/controller"
	addressPool      = "127.100.0.0/16"
	// usableAddress and unusableAddress are GatewayStaticAddresses'
	// spec.addresses: one the gateway can bind in the run's network
	// namespace (loopback, outside the pool so no pool Gateway has it) and
	// one it cannot (TEST-NET-1, on no interface: EADDRNOTAVAIL).
	usableAddress   = "127.101.0.1"
	unusableAddress = "192.0.2.10"
	// Tool versions, cached in ${MESHGATE_TOOLS} by scripts/conformance.sh.
	echoBasicVersion = "v1.6.3" // built from sigs.k8s.io/gateway-api/conformance/echo-basic
	corednsVersion   = "v1.12.2"
	reportName       = "v1.6.3-meshgate-report.yaml"
	// defaultProfiles: the suite infers GRPCRoute and TLSRoute support from
	// the GatewayClass status and runs their tests anyway, so the report
	// gets a section for each.
	defaultProfiles = "GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS"
)

// TestConformance runs the Gateway API conformance suite (v1.6.3) against
// the real gateway binary (bin/gateway, or $MESHGATE_GATEWAY_BIN) with a
// local control plane and the node agent. The suite's own flags apply
// (-run-test, -skip-tests, -conformance-profiles, -report-output, ...);
// defaults here: GatewayClass "meshgate", profiles GATEWAY-HTTP, -GRPC and -TLS,
// GatewayStaticAddresses' -usable-address and -unusable-address, features
// inferred from GatewayClass status.supportedFeatures, base resources not
// cleaned up (the whole cluster goes away), and for full runs (no
// -run-test) the report written to conformance/reports/.
func TestConformance(t *testing.T) {
	start := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.Contains(b, []byte("module github.com/meshgate/meshgate\n")) {
		t.Fatalf("%s is not the Meshgate checkout (run from test/conformance)", root)
	}
	if consts.BundleVersion != cluster.GatewayAPIVersion {
		t.Fatalf("suite bundle version %s != CRDs installed %s", consts.BundleVersion, cluster.GatewayAPIVersion)
	}
	gatewayBin := os.Getenv("MESHGATE_GATEWAY_BIN")
	if gatewayBin == "" {
		gatewayBin = filepath.Join(root, "bin", "gateway")
	}
	echoBin := cluster.ToolPath("echo-basic", echoBasicVersion)
	corednsBin := cluster.ToolPath("coredns", corednsVersion)
	for _, p := range []string{gatewayBin, echoBin, corednsBin} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run scripts/conformance.sh (make conformance), which builds bin/gateway, echo-basic and coredns", err)
		}
	}

	dir := os.Getenv("MESHGATE_CONFORMANCE_DIR")
	ownDir := dir == ""
	if ownDir {
		if dir, err = os.MkdirTemp("", "meshgate-conformance-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("conformance: logs and data in %s", dir)
	t.Cleanup(func() {
		if t.Failed() || !ownDir || os.Getenv("MESHGATE_CONFORMANCE_KEEP") != "" {
			t.Logf("conformance: kept %s (gateway.log, nodeagent.log, kube-*.log, pods/*/logs)", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})

	// Control plane.
	c, err := cluster.Start(dir, root)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Logf("conformance: control plane up in %v", time.Since(start).Round(time.Millisecond))
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}

	// Node agent.
	agentLog, err := os.Create(filepath.Join(dir, "nodeagent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentLog.Close() })
	_, podCIDR, _ := net.ParseCIDR("10.244.0.0/16")
	agent, err := nodeagent.Start(nodeagent.Config{
		Client:      cs,
		NodeName:    "meshgate-node",
		Bridge:      "mgbr0",
		HostIP:      net.ParseIP("10.244.0.1"),
		PodCIDR:     podCIDR,
		KubeletPort: 10250,
		Dir:         dir,
		Image: func(image string) (string, bool) {
			repo := image
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			switch {
			case strings.HasSuffix(repo, "/echo-basic"):
				return echoBin, true
			case repo == "registry.k8s.io/coredns/coredns":
				return corednsBin, true
			}
			return "", false
		},
		Spawn: cluster.Spawn,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(agentLog, time.Now().Format(time.RFC3339Nano)+" "+format+"\n", args...)
		},
	})
	if err != nil {
		t.Fatalf("node agent: %v", err)
	}
	t.Cleanup(agent.Stop)

	// GatewayClass.
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	gc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "GatewayClass",
		"metadata":   map[string]any{"name": gatewayClassName},
		"spec":       map[string]any{"controllerName": controllerName},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Create(ctx, gc); err != nil {
		t.Fatalf("create GatewayClass: %v", err)
	}

	// The gateway.
	adminPort, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	gwLog := filepath.Join(dir, "gateway.log")
	gw, err := cluster.StartProcess("gateway", gatewayBin, gwLog, []string{
		"run",
		"--kubernetes",
		"--kubeconfig=" + c.Kubeconfig,
		"--gateway-address-pool=" + addressPool,
		"--admin-addr=127.0.0.1:" + strconv.Itoa(adminPort),
		"--controller-name=" + controllerName,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.Stop()
		if t.Failed() {
			t.Logf("conformance: last lines of %s:\n%s", gwLog, cluster.Tail(gwLog, 60))
		}
	})
	if err := cluster.WaitHTTP(gw, "http://127.0.0.1:"+strconv.Itoa(adminPort)+"/healthz", 60*time.Second); err != nil {
		t.Fatalf("gateway: %v\n%s", err, cluster.Tail(gwLog, 40))
	}
	if err := waitGatewayClassAccepted(ctx, cl); err != nil {
		t.Fatalf("GatewayClass %s: %v\n%s", gatewayClassName, err, cluster.Tail(gwLog, 40))
	}
	t.Logf("conformance: gateway up, GatewayClass accepted, %v since start", time.Since(start).Round(time.Millisecond))

	// The suite.
	t.Setenv("KUBECONFIG", c.Kubeconfig)
	opts := conformance.DefaultOptions(t)
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["gateway-class"] {
		opts.GatewayClassName = gatewayClassName
	}
	if !set["conformance-profiles"] {
		opts.ConformanceProfiles = suite.ParseConformanceProfiles(defaultProfiles).UnsortedList()
	}
	if !set["cleanup-base-resources"] {
		opts.CleanupBaseResources = false
	}
	ipType := gatewayv1.IPAddressType
	if !set["usable-address"] {
		opts.UsableNetworkAddresses = []gatewayv1.GatewaySpecAddress{{Type: &ipType, Value: usableAddress}}
	}
	if !set["unusable-address"] {
		opts.UnusableNetworkAddresses = []gatewayv1.GatewaySpecAddress{{Type: &ipType, Value: unusableAddress}}
	}
	// MESHGATE_CONFORMANCE_TESTS=A,B,C runs only those tests (the suite's
	// -run-test takes one): every other test is skipped. No report then.
	only := os.Getenv("MESHGATE_CONFORMANCE_TESTS")
	if only != "" {
		want := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			want[strings.TrimSpace(n)] = true
		}
		found := 0
		for _, ct := range tests.ConformanceTests {
			if want[ct.ShortName] {
				found++
			} else {
				opts.SkipTests = append(opts.SkipTests, ct.ShortName)
			}
		}
		if found != len(want) {
			t.Fatalf("MESHGATE_CONFORMANCE_TESTS=%s: %d of %d names are conformance tests", only, found, len(want))
		}
	}
	if !set["report-output"] && opts.RunTest == "" && only == "" && os.Getenv("MESHGATE_CONFORMANCE_NO_REPORT") == "" {
		opts.ReportOutputPath = filepath.Join(root, "conformance", "reports", reportName)
	}
	impl := &opts.Implementation
	if impl.Organization == "" {
		impl.Organization = "meshgate"
	}
	if impl.Project == "" {
		impl.Project = "meshgate"
	}
	if impl.URL == "" {
		impl.URL = "https://example.invalid/meshgate"
	}
	if impl.Version == "" {
		impl.Version = os.Getenv("MESHGATE_VERSION")
		if impl.Version == "" {
			impl.Version = "dev"
		}
	}
	if len(impl.Contact) == 0 {
		impl.Contact = []string{"@meshgate"}
	}
	opts.Hook = func(t *testing.T, test suite.ConformanceTest, _ *suite.ConformanceTestSuite) {
		if t.Failed() {
			t.Logf("conformance: %s failed; gateway log %s, last lines:\n%s", test.ShortName, gwLog, cluster.Tail(gwLog, 20))
		}
	}
	t.Cleanup(func() { t.Logf("conformance: total %v", time.Since(start).Round(time.Second)) })
	conformance.RunConformanceWithOptions(t, opts)
}

func waitGatewayClassAccepted(ctx context.Context, cl client.Client) error {
	for {
		gc := &unstructured.Unstructured{}
		gc.SetAPIVersion("gateway.networking.k8s.io/v1")
		gc.SetKind("GatewayClass")
		err := cl.Get(ctx, client.ObjectKey{Name: gatewayClassName}, gc)
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(gc.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Accepted" && m["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not Accepted: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
