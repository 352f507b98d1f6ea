package deploytest

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func container(t *testing.T, deploy obj) obj {
	t.Helper()
	cs, _ := get(deploy, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, have %d", key(deploy), len(cs))
	}
	return cs[0].(obj)
}

func containerArgs(t *testing.T, deploy obj) []string {
	t.Helper()
	var args []string
	for _, a := range get(container(t, deploy), "args").([]any) {
		args = append(args, str(a))
	}
	return args
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestDeployment checks deploy/base's Deployment (the chart renders the same
// one, see TestHelmDefaultsMatchBase).
func TestDeployment(t *testing.T) {
	objs := kustomize(t, "deploy/base")
	d := one(t, objs, "Deployment")
	pod := get(d, "spec", "template", "spec").(obj)
	c := container(t, d)
	args := containerArgs(t, d)

	if r := get(d, "spec", "replicas"); r != 2.0 {
		t.Errorf("replicas = %v, want 2", r)
	}
	if len(args) == 0 || args[0] != "run" {
		t.Errorf("args %q do not start with the run command", args)
	}
	for _, want := range []string{"--kubernetes", "--leader-elect"} {
		if !contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}

	// Security context: pod and container.
	for _, sc := range []struct {
		what      string
		got, want any
	}{
		{"pod runAsNonRoot", get(pod, "securityContext", "runAsNonRoot"), true},
		{"pod runAsUser", get(pod, "securityContext", "runAsUser"), 65532.0},
		{"pod seccompProfile", get(pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault"},
		{"container runAsNonRoot", get(c, "securityContext", "runAsNonRoot"), true},
		{"container readOnlyRootFilesystem", get(c, "securityContext", "readOnlyRootFilesystem"), true},
		{"container allowPrivilegeEscalation", get(c, "securityContext", "allowPrivilegeEscalation"), false},
	} {
		if sc.got != sc.want {
			t.Errorf("%s = %v, want %v", sc.what, sc.got, sc.want)
		}
	}
	if drop := get(c, "securityContext", "capabilities", "drop"); !reflect.DeepEqual(drop, []any{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", drop)
	}
	if add := get(c, "securityContext", "capabilities", "add"); add != nil {
		t.Errorf("capabilities.add = %v, want none", add)
	}
	for _, f := range []string{"privileged", "hostNetwork", "hostPID", "hostIPC"} {
		if get(c, "securityContext", f) == true || pod[f] == true {
			t.Errorf("%s is set", f)
		}
	}

	// Resources.
	for path, want := range map[string]string{"requests/cpu": "100m", "requests/memory": "128Mi", "limits/memory": "512Mi"} {
		p := strings.Split(path, "/")
		if got := get(c, "resources", p[0], p[1]); got != want {
			t.Errorf("resources.%s = %v, want %s", strings.ReplaceAll(path, "/", "."), got, want)
		}
	}

	// Downward API.
	env := map[string]any{}
	for _, e := range get(c, "env").([]any) {
		em := e.(obj)
		env[str(em["name"])] = get(em, "valueFrom", "fieldRef", "fieldPath")
	}
	if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("env POD_NAME/POD_NAMESPACE not from the downward API: %v", env)
	}

	// Probes on the admin listener.
	adminAddr, ok := flagValue(args, "admin-addr")
	if !ok {
		t.Fatalf("args %q lack --admin-addr", args)
	}
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil || (host != "0.0.0.0" && host != "") {
		t.Errorf("--admin-addr=%s must listen on all pod addresses for the kubelet's probes", adminAddr)
	}
	ports := map[string]string{}
	for _, p := range get(c, "ports").([]any) {
		pm := p.(obj)
		ports[str(pm["name"])] = strconv.Itoa(int(pm["containerPort"].(float64)))
	}
	if ports["admin"] != port || port != "9901" {
		t.Errorf("containerPort admin = %s, --admin-addr port = %s, want both 9901", ports["admin"], port)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/ready"} {
		if got := get(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
		if got := get(c, probe, "httpGet", "port"); got != "admin" && got != 9901.0 {
			t.Errorf("%s port = %v, want the admin port", probe, got)
		}
	}
	if c["lifecycle"] != nil {
		t.Errorf("lifecycle hooks set (%v): --shutdown-delay replaces a preStop sleep", c["lifecycle"])
	}

	// Graceful shutdown fits in the grace period.
	dur := func(name string) time.Duration {
		v, ok := flagValue(args, name)
		if !ok {
			t.Fatalf("args %q lack --%s", args, name)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("--%s=%s: %v", name, v, err)
		}
		return d
	}
	grace, _ := pod["terminationGracePeriodSeconds"].(float64)
	if need := dur("shutdown-delay") + dur("drain-timeout"); time.Duration(grace)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds = %v, must exceed shutdown-delay + drain-timeout = %v", grace, need)
	}

	// The Service passed as --gateway-service exists and selects these pods,
	// and so does the PodDisruptionBudget.
	podLabels := get(d, "spec", "template", "metadata", "labels").(obj)
	selects := func(sel any) bool {
		m, ok := sel.(obj)
		if !ok || len(m) == 0 {
			return false
		}
		for k, v := range m {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	svcName, _ := flagValue(args, "gateway-service")
	svc := one(t, objs, "Service")
	if get(svc, "metadata", "name") != svcName || !selects(get(svc, "spec", "selector")) {
		t.Errorf("--gateway-service=%s does not name the Service selecting the gateway pods", svcName)
	}
	if get(svc, "spec", "type") != "LoadBalancer" || get(svc, "spec", "externalTrafficPolicy") != "Local" {
		t.Errorf("Service is not a LoadBalancer with externalTrafficPolicy Local")
	}
	if !selects(get(d, "spec", "selector", "matchLabels")) {
		t.Error("Deployment selector does not match its pod labels")
	}
	pdb := one(t, objs, "PodDisruptionBudget")
	if get(pdb, "spec", "minAvailable") != 1.0 || !selects(get(pdb, "spec", "selector", "matchLabels")) {
		t.Errorf("PodDisruptionBudget: want minAvailable 1 selecting the gateway pods")
	}
	spread, _ := pod["topologySpreadConstraints"].([]any)
	var byNode bool
	for _, s := range spread {
		if get(s, "topologyKey") == "kubernetes.io/hostname" && selects(get(s, "labelSelector", "matchLabels")) {
			byNode = true
		}
	}
	if !byNode {
		t.Error("no topology spread of the gateway pods across nodes")
	}
	if sa := pod["serviceAccountName"]; sa != get(one(t, objs, "ServiceAccount"), "metadata", "name") {
		t.Errorf("serviceAccountName %v is not the ServiceAccount of deploy/base", sa)
	}
	gc := one(t, objs, "GatewayClass")
	if get(gc, "metadata", "name") != "meshgate" || get(gc, "spec", "controllerName") != "gateway.meshgate.dev/controller" {
		t.Errorf("GatewayClass: want meshgate with controllerName gateway.meshgate.dev/controller, have %v", gc)
	}
}

var readVerbs = map[string]bool{"get": true, "list": true, "watch": true}

// TestRBAC: no wildcards; reads only on what the provider watches; writes
// only on status subresources, the leader Lease (in meshgate-system),
// events (create) and, in meshgate-system only, the ACME storage's Secrets
// and lock Leases.
func TestRBAC(t *testing.T) {
	objs := kustomize(t, "deploy/base")
	read := map[string]bool{}  // group/resource readable cluster-wide
	write := map[string]bool{} // group/resource writable
	for _, o := range append(byKind(objs, "ClusterRole"), byKind(objs, "Role")...) {
		kind := str(o["kind"])
		rules, _ := o["rules"].([]any)
		for _, r := range rules {
			rm := r.(obj)
			if rm["nonResourceURLs"] != nil {
				t.Errorf("%s: nonResourceURLs granted", key(o))
			}
			list := func(f string) []string {
				var out []string
				for _, x := range get(rm, f).([]any) {
					out = append(out, str(x))
				}
				return out
			}
			groups, resources, verbs := list("apiGroups"), list("resources"), list("verbs")
			for _, x := range append(append(append([]string{}, groups...), resources...), verbs...) {
				if strings.Contains(x, "*") {
					t.Errorf("%s: wildcard %q", key(o), x)
				}
			}
			for _, g := range groups {
				for _, res := range resources {
					gr := g + "/" + res
					for _, v := range verbs {
						if readVerbs[v] {
							if kind == "ClusterRole" {
								read[gr] = true
							}
							continue
						}
						write[gr] = true
						switch {
						case strings.HasSuffix(res, "/status") && (v == "update" || v == "patch") && kind == "ClusterRole":
						case gr == "coordination.k8s.io/leases" && kind == "Role" && get(o, "metadata", "namespace") == namespace &&
							(v == "create" || v == "update"):
						case (gr == "/secrets" || gr == "coordination.k8s.io/leases") && kind == "Role" &&
							get(o, "metadata", "name") == "meshgate-acme" && get(o, "metadata", "namespace") == namespace &&
							(v == "create" || v == "update" || v == "delete"):
							// ACME Secret storage and its lock Leases.
						case res == "events" && (g == "" || g == "events.k8s.io") && v == "create":
						default:
							t.Errorf("%s: %s on %s is not allowed", key(o), v, gr)
						}
					}
				}
			}
		}
	}

	gwAPI := []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes", "tlsroutes", "udproutes", "backendtlspolicies", "listenersets"}
	mg := []string{"backends", "trafficpolicies", "faultinjections", "rollouts", "securitypolicies"}
	wantRead := []string{"gateway.networking.k8s.io/referencegrants", "/services", "/secrets", "/configmaps", "/namespaces", "discovery.k8s.io/endpointslices"}
	wantWrite := []string{"coordination.k8s.io/leases", "/events", "events.k8s.io/events", "/secrets"}
	for _, r := range gwAPI {
		wantRead = append(wantRead, "gateway.networking.k8s.io/"+r)
		wantWrite = append(wantWrite, "gateway.networking.k8s.io/"+r+"/status")
	}
	for _, r := range mg {
		wantRead = append(wantRead, "gateway.meshgate.dev/"+r)
		wantWrite = append(wantWrite, "gateway.meshgate.dev/"+r+"/status")
	}
	for _, gr := range wantRead {
		if !read[gr] {
			t.Errorf("ClusterRole cannot get/list/watch %s", gr)
		}
	}
	for _, gr := range wantWrite {
		if !write[gr] {
			t.Errorf("no write access to %s", gr)
		}
	}
	for gr := range read {
		if !contains(wantRead, gr) {
			t.Errorf("ClusterRole reads %s, which the provider does not need", gr)
		}
	}
	for gr := range write {
		if !contains(wantWrite, gr) {
			t.Errorf("write access to %s, which the provider does not need", gr)
		}
	}

	// The leader Lease: get/update limited to its name.
	role := named(t, objs, "Role", "meshgate-leader-election")
	var named bool
	for _, r := range role["rules"].([]any) {
		if reflect.DeepEqual(get(r, "resourceNames"), []any{"meshgate-leader"}) {
			named = true
		}
	}
	if !named {
		t.Error("Role does not limit the Lease rules to resourceNames [meshgate-leader]")
	}

	// Bindings give the roles to the gateway's ServiceAccount only.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range byKind(objs, kind) {
			want := []any{obj{"kind": "ServiceAccount", "name": "meshgate", "namespace": namespace}}
			if !reflect.DeepEqual(b["subjects"], want) {
				t.Errorf("%s subjects = %v, want %v", key(b), b["subjects"], want)
			}
		}
	}
	if n := len(byKind(objs, "RoleBinding")); n != 2 {
		t.Errorf("%d RoleBindings, want 2 (leader election, ACME storage)", n)
	}
}

// TestDockerfile: the image runs as the user the Deployment expects and
// builds the static binary the way the brief of this folder says. (No image
// is built here: that needs a container builder.)
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"CGO_ENABLED=0 go build -trimpath",
		"-o /gateway ./cmd/gateway",
		"USER 65532:65532",
		`ENTRYPOINT ["/gateway"]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// named is the one object of kind named name.
func named(t *testing.T, objs []obj, kind, name string) obj {
	t.Helper()
	for _, o := range byKind(objs, kind) {
		if get(o, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}
