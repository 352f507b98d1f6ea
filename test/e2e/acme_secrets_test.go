package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestACMESecretStorageReplicas runs two replicas with --kubernetes and the
// default ACME storage (Secrets) against Pebble: one orders the certificate
// (the other waits on the lock Lease, then finds it in storage), both serve
// the same certificate, and it is kept in labelled Secrets of the
// gateway's namespace. The CA reaches only replica A (the name resolves to
// it), so when B orders, A answers the validation from the shared storage.
func TestACMESecretStorageReplicas(t *testing.T) {
	e := newKubeEnv(t)
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshgate-system"}})
	e.service("app", newKubeBackend(t, "a"))
	const host = "shared.acme.test"
	e.create(e.route("app", host, "app"))

	ipA, ipB := newLoopbackIP(t), newLoopbackIP(t)
	httpPort, tlsPort := freePort(t, ipA), freePort(t, ipA)
	p := startPebble(t, fakeDNS(t, map[string]string{host: ipA}), httpPort, tlsPort, 3600)
	hostname := gwapiv1.Hostname(host)
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns, Annotations: map[string]string{
			"gateway.meshgate.dev/acme": "true", "gateway.meshgate.dev/acme-email": "ops@example.com"}},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Listeners: []gwapiv1.Listener{
				{Name: "http", Port: gwapiv1.PortNumber(httpPort), Protocol: gwapiv1.HTTPProtocolType},
				{Name: "https", Port: gwapiv1.PortNumber(tlsPort), Protocol: gwapiv1.HTTPSProtocolType, Hostname: &hostname},
			},
		},
	})
	args := func(ip string) []string {
		return []string{"--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--bind-address", ip,
			"--leader-elect", "--leader-elect-namespace", "meshgate-system", "--acme-namespace", "meshgate-system",
			"--acme-ca", "https://" + p.api + "/dir", "--acme-ca-root", filepath.Join(p.dir, "cert.pem"),
			"--acme-http-port", strconv.Itoa(httpPort), "--acme-tls-port", strconv.Itoa(tlsPort),
			"--acme-challenges", "http-01", "--http3=false"}
	}
	gA := startGateway(t, ipA, "", args(ipA)...)
	gB := startGateway(t, ipB, "", args(ipB)...)

	roots := p.roots(t)
	leafA := waitCert(t, gA, tlsPort, host, roots)
	leafB := waitCert(t, gB, tlsPort, host, roots)
	if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Errorf("replicas serve different certificates: serials %s and %s (each ordered its own)", leafA.SerialNumber, leafB.SerialNumber)
	}
	if n := gA.countLogs("ACME certificate obtained") + gB.countLogs("ACME certificate obtained"); n != 1 {
		t.Errorf("%d orders across the replicas, want 1", n)
	}

	var secrets corev1.SecretList
	if err := e.c.List(e.ctx(), &secrets, client.InNamespace("meshgate-system"), client.MatchingLabels{"gateway.meshgate.dev/acme-storage": "meshgate-acme"}); err != nil {
		t.Fatal(err)
	}
	var crt bool
	for _, s := range secrets.Items {
		if k := s.Annotations["gateway.meshgate.dev/acme-key"]; strings.HasSuffix(k, "/"+host+".crt") {
			crt = true
		}
	}
	if !crt {
		t.Errorf("no Secret holds the certificate of %s among %d ACME Secrets", host, len(secrets.Items))
	}
}
