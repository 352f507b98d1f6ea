// Package nodeagent is a kubelet-less mini node for the conformance run. It
// registers one Node (Ready, with a Lease renewed every 10 s), binds every
// unscheduled Pod to it (there is no scheduler), and runs each Pod's
// containers as local processes, each Pod in its own network namespace on a
// Linux bridge with a real pod IP, so kube-controller-manager's EndpointSlice
// controller publishes addresses where something actually listens.
//
// Images are mapped to local binaries (Config.Images); a container whose
// image has no mapping gets ErrImagePull and its Pod never becomes Ready.
// Secret, ConfigMap and emptyDir volumes are written to a per-pod directory;
// env values and args that name a mount path are rewritten to that
// directory (a documented deviation: processes share the host's mount
// namespace). Container stdout/stderr are kept with timestamps and served
// on the node's kubelet endpoint (HTTPS, /containerLogs/...), so pods/log
// works through the apiserver. Readiness means the process has a listening
// socket in its namespace (probes are not run). Pods being deleted are
// stopped (SIGTERM, then SIGKILL), their namespace removed, and the Pod
// object deleted with grace period 0, as a kubelet does.
//
// Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2; meant to run
// inside a private network and mount namespace.
package nodeagent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// Config configures an Agent.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// Bridge is the Linux bridge pods are attached to (created if missing).
	Bridge string
	// HostIP is the bridge's address, the node's InternalIP and the
	// kubelet endpoint's address; pods get addresses in PodCIDR after it.
	HostIP  net.IP
	PodCIDR *net.IPNet
	// KubeletPort is the HTTPS port of the container log endpoint.
	KubeletPort int
	// Dir holds per-pod volumes and container logs.
	Dir string
	// Image maps a container image to a local binary; ok=false means
	// the image is not available (ErrImagePull).
	Image func(image string) (binary string, ok bool)
	// Spawn starts a command (nil: cmd.Start).
	Spawn func(*exec.Cmd) error
	Logf  func(format string, args ...any)
}

// Agent is a running node agent.
type Agent struct {
	cfg    Config
	cs     kubernetes.Interface
	lister corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	pods   map[string]*podRun // by namespace/name
	logs   map[string]string  // namespace/name/container -> log file (kept after deletion)
	nextIP uint32
	seq    int
	srv    *logServer
}

// Start sets up the bridge, registers the Node and starts serving pods.
func Start(cfg Config) (*Agent, error) {
	if cfg.Spawn == nil {
		cfg.Spawn = func(c *exec.Cmd) error { return c.Start() }
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	a := &Agent{
		cfg:  cfg,
		cs:   cfg.Client,
		pods: map[string]*podRun{},
		logs: map[string]string{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](
			100*time.Millisecond, 5*time.Second)),
	}
	a.nextIP = ipToUint(cfg.HostIP) + 1
	if err := a.setupBridge(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	srv, err := startLogServer(a, net.JoinHostPort(cfg.HostIP.String(), fmt.Sprint(cfg.KubeletPort)))
	if err != nil {
		cancel()
		return nil, err
	}
	a.srv = srv
	if err := a.registerNode(ctx); err != nil {
		cancel()
		srv.close()
		return nil, err
	}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.heartbeat(ctx) }()

	factory := informers.NewSharedInformerFactory(a.cs, 0)
	inf := factory.Core().V1().Pods()
	a.lister = inf.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.queue.Add(key)
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for i := 0; i < 8; i++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for a.work(ctx) {
			}
		}()
	}
	go func() { <-ctx.Done(); a.queue.ShutDown() }()
	return a, nil
}

// Stop stops every pod process, removes their namespaces and stops the
// agent. Pod objects are left as they are.
func (a *Agent) Stop() {
	a.cancel()
	a.wg.Wait()
	a.mu.Lock()
	runs := make([]*podRun, 0, len(a.pods))
	for _, r := range a.pods {
		runs = append(runs, r)
	}
	a.pods = map[string]*podRun{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop(2 * time.Second) }()
	}
	wg.Wait()
	a.srv.close()
}

func (a *Agent) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (a *Agent) setupBridge() error {
	ones, _ := a.cfg.PodCIDR.Mask.Size()
	if err := exec.Command("ip", "link", "show", a.cfg.Bridge).Run(); err != nil {
		if err := a.ip("link", "add", a.cfg.Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	_ = exec.Command("ip", "addr", "add", fmt.Sprintf("%s/%d", a.cfg.HostIP, ones), "dev", a.cfg.Bridge).Run()
	return a.ip("link", "set", a.cfg.Bridge, "up")
}

func (a *Agent) registerNode(ctx context.Context) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("500"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": a.cfg.NodeName,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
		}},
		Spec: corev1.NodeSpec{PodCIDR: a.cfg.PodCIDR.String(), PodCIDRs: []string{a.cfg.PodCIDR.String()}},
	}
	created, err := a.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = a.cs.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "meshgate conformance node agent is ready", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.cfg.HostIP.String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(a.cfg.KubeletPort)}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: "amd64",
			KubeletVersion: "v1.36.3-meshgate-nodeagent", ContainerRuntimeVersion: "meshgate-nodeagent://0",
		},
	}
	if _, err := a.cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	return nil
}

// heartbeat renews the node Lease every 10 s.
func (a *Agent) heartbeat(ctx context.Context) {
	leases := a.cs.CoordinationV1().Leases("kube-node-lease")
	for {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: "kube-node-lease"},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(a.cfg.NodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now,
				},
			}, metav1.CreateOptions{})
		case err == nil:
			l.Spec.RenewTime = &now
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			a.cfg.Logf("nodeagent: lease: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}

func (a *Agent) work(ctx context.Context) bool {
	key, shutdown := a.queue.Get()
	if shutdown {
		return false
	}
	defer a.queue.Done(key)
	if err := a.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			a.cfg.Logf("nodeagent: pod %s: %v (retrying)", key, err)
			a.queue.AddRateLimited(key)
		}
		return true
	}
	a.queue.Forget(key)
	return true
}

func (a *Agent) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pod, err := a.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		a.teardown(key, nil)
		return nil
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	run := a.pods[key]
	a.mu.Unlock()
	if run != nil && run.uid != pod.UID { // a new pod with the same name
		a.teardown(key, nil)
		run = nil
	}
	if pod.DeletionTimestamp != nil {
		if pod.Spec.NodeName != "" && pod.Spec.NodeName != a.cfg.NodeName {
			return nil
		}
		grace := 10 * time.Second
		if g := pod.DeletionGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
			grace = time.Duration(*g) * time.Second
		}
		a.teardown(key, &grace)
		err := a.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		return nil
	}
	if pod.Spec.NodeName == "" {
		return a.cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: a.cfg.NodeName},
		}, metav1.CreateOptions{})
	}
	if pod.Spec.NodeName != a.cfg.NodeName || run != nil {
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	return a.startPod(ctx, key, pod)
}

// teardown stops the pod's processes (SIGKILL after grace; nil: at once)
// and removes its network namespace.
func (a *Agent) teardown(key string, grace *time.Duration) {
	a.mu.Lock()
	run := a.pods[key]
	delete(a.pods, key)
	a.mu.Unlock()
	if run == nil {
		return
	}
	g := time.Duration(0)
	if grace != nil {
		g = *grace
	}
	run.stop(g)
}

func (a *Agent) allocate() (ip net.IP, seq int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nextIP
	ip = uintToIP(n)
	if !a.cfg.PodCIDR.Contains(ip) || !a.cfg.PodCIDR.Contains(uintToIP(n+1)) {
		return nil, 0, fmt.Errorf("pod CIDR %s exhausted", a.cfg.PodCIDR)
	}
	a.nextIP++
	a.seq++
	return ip, a.seq, nil
}

func (a *Agent) startPod(ctx context.Context, key string, pod *corev1.Pod) error {
	ip, seq, err := a.allocate()
	if err != nil {
		return err
	}
	run := &podRun{
		agent: a, uid: pod.UID, ns: pod.Namespace, name: pod.Name, ip: ip,
		netns:    fmt.Sprintf("mgpod-%d", seq),
		hostVeth: fmt.Sprintf("mgv%d", seq),
		dir:      filepath.Join(a.cfg.Dir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)),
		started:  metav1.Now(),
		changed:  make(chan struct{}, 1),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := run.setupNetwork(); err != nil {
		run.removeNetwork()
		return err
	}
	if err := run.writeVolumes(ctx, pod); err != nil {
		run.removeNetwork()
		return err
	}
	a.mu.Lock()
	a.pods[key] = run
	a.mu.Unlock()
	run.startContainers(ctx, pod)
	go run.statusLoop()
	return nil
}

func (a *Agent) setLogPath(ns, pod, container, path string) {
	a.mu.Lock()
	a.logs[ns+"/"+pod+"/"+container] = path
	a.mu.Unlock()
}

func (a *Agent) logPath(ns, pod, container string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.logs[ns+"/"+pod+"/"+container]
	return p, ok
}

// updatePodStatus writes status computed by fn from the current pod.
func (a *Agent) updatePodStatus(ns, name string, uid types.UID, fn func(*corev1.Pod)) error {
	return wait.ExponentialBackoff(wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 6}, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pod, err := a.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
		if pod.UID != uid || pod.DeletionTimestamp != nil {
			return true, nil
		}
		fn(pod)
		_, err = a.cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, nil
	})
}

func ipToUint(ip net.IP) uint32 {
	v4 := ip.To4()
	return uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
}

func uintToIP(n uint32) net.IP {
	return net.IPv4(byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func ensureDir(p string) error { return os.MkdirAll(p, 0o755) }
