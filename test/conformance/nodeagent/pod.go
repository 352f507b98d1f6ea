package nodeagent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podRun is one pod running on the node.
type podRun struct {
	agent    *Agent
	uid      types.UID
	ns, name string
	ip       net.IP
	netns    string
	hostVeth string
	dir      string
	started  metav1.Time

	containers []*container
	wg         sync.WaitGroup
	stopOnce   sync.Once
	stopping   chan struct{}
	changed    chan struct{}
	done       chan struct{}
}

type container struct {
	spec    corev1.Container
	binary  string // "": image not available
	logPath string
	args    []string
	env     []string

	mu        sync.Mutex
	proc      *os.Process
	running   bool
	ready     bool
	restarts  int32
	startedAt metav1.Time
	lastExit  *corev1.ContainerStateTerminated
}

func (r *podRun) setupNetwork() error {
	a := r.agent
	ones, _ := a.cfg.PodCIDR.Mask.Size()
	steps := [][]string{
		{"netns", "add", r.netns},
		{"link", "add", r.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", r.netns},
		{"link", "set", r.hostVeth, "master", a.cfg.Bridge},
		{"link", "set", r.hostVeth, "up"},
		{"-n", r.netns, "addr", "add", fmt.Sprintf("%s/%d", r.ip, ones), "dev", "eth0"},
		{"-n", r.netns, "link", "set", "eth0", "up"},
		{"-n", r.netns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := a.ip(s...); err != nil {
			return err
		}
	}
	return nil
}

func (r *podRun) removeNetwork() {
	_ = exec.Command("ip", "link", "del", r.hostVeth).Run()
	_ = exec.Command("ip", "netns", "del", r.netns).Run()
}

// writeVolumes lays out Secret, ConfigMap and emptyDir volumes under
// r.dir/volumes and resolves each container's command and environment.
func (r *podRun) writeVolumes(ctx context.Context, pod *corev1.Pod) error {
	cs := r.agent.cs
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		d := filepath.Join(r.dir, "volumes", v.Name)
		if err := ensureDir(d); err != nil {
			return err
		}
		vols[v.Name] = d
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			s, err := cs.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				if v.Secret.Optional != nil && *v.Secret.Optional {
					continue
				}
				return fmt.Errorf("volume %s: secret %s: %w", v.Name, v.Secret.SecretName, err)
			}
			data, items = s.Data, v.Secret.Items
		case v.ConfigMap != nil:
			cm, err := cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
					continue
				}
				return fmt.Errorf("volume %s: configmap %s: %w", v.Name, v.ConfigMap.Name, err)
			}
			data = map[string][]byte{}
			for k, val := range cm.Data {
				data[k] = []byte(val)
			}
			for k, val := range cm.BinaryData {
				data[k] = val
			}
			items = v.ConfigMap.Items
		default:
			// emptyDir: the directory. Projected service-account tokens and
			// other volume types are not provided (nothing in the suite's
			// Gateway profiles reads them).
			continue
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				continue
			}
			p := filepath.Join(d, filepath.Clean("/"+it.Path))
			if err := ensureDir(filepath.Dir(p)); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
		}
	}

	for _, c := range pod.Spec.Containers {
		ct := &container{spec: c, logPath: filepath.Join(r.dir, "logs", c.Name+".log")}
		if err := ensureDir(filepath.Dir(ct.logPath)); err != nil {
			return err
		}
		r.agent.setLogPath(pod.Namespace, pod.Name, c.Name, ct.logPath)
		if bin, ok := r.agent.cfg.Image(c.Image); ok {
			ct.binary = bin
		}
		var mounts [][2]string
		for _, m := range c.VolumeMounts {
			if d, ok := vols[m.Name]; ok {
				mounts = append(mounts, [2]string{strings.TrimSuffix(m.MountPath, "/"), filepath.Join(d, m.SubPath)})
			}
		}
		sort.Slice(mounts, func(i, j int) bool { return len(mounts[i][0]) > len(mounts[j][0]) })
		rewrite := func(s string) string {
			for _, m := range mounts {
				if s == m[0] || strings.HasPrefix(s, m[0]+"/") {
					return m[1] + s[len(m[0]):]
				}
			}
			return s
		}
		if len(c.Command) > 1 {
			for _, s := range c.Command[1:] {
				ct.args = append(ct.args, rewrite(s))
			}
		}
		for _, s := range c.Args {
			ct.args = append(ct.args, rewrite(s))
		}
		ct.env = []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOSTNAME=" + pod.Name,
			"HOME=/root",
		}
		for _, e := range c.Env {
			val, err := r.envValue(ctx, pod, e)
			if err != nil {
				return fmt.Errorf("container %s env %s: %w", c.Name, e.Name, err)
			}
			ct.env = append(ct.env, e.Name+"="+rewrite(val))
		}
		r.containers = append(r.containers, ct)
	}
	return nil
}

func (r *podRun) envValue(ctx context.Context, pod *corev1.Pod, e corev1.EnvVar) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	vf := e.ValueFrom
	switch {
	case vf.FieldRef != nil:
		p := vf.FieldRef.FieldPath
		switch p {
		case "metadata.name":
			return pod.Name, nil
		case "metadata.namespace":
			return pod.Namespace, nil
		case "metadata.uid":
			return string(pod.UID), nil
		case "spec.nodeName":
			return r.agent.cfg.NodeName, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, nil
		case "status.podIP", "status.podIPs":
			return r.ip.String(), nil
		case "status.hostIP", "status.hostIPs":
			return r.agent.cfg.HostIP.String(), nil
		}
		for _, pre := range []string{"metadata.labels['", "metadata.annotations['"} {
			if strings.HasPrefix(p, pre) && strings.HasSuffix(p, "']") {
				k := p[len(pre) : len(p)-2]
				if strings.HasPrefix(pre, "metadata.labels") {
					return pod.Labels[k], nil
				}
				return pod.Annotations[k], nil
			}
		}
		return "", fmt.Errorf("fieldRef %s not supported", p)
	case vf.SecretKeyRef != nil:
		s, err := r.agent.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, vf.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return string(s.Data[vf.SecretKeyRef.Key]), nil
	case vf.ConfigMapKeyRef != nil:
		cm, err := r.agent.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, vf.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return cm.Data[vf.ConfigMapKeyRef.Key], nil
	}
	return "", nil
}

func (r *podRun) startContainers(ctx context.Context, pod *corev1.Pod) {
	for _, c := range r.containers {
		if c.binary == "" {
			r.agent.cfg.Logf("nodeagent: pod %s/%s container %s: image %s has no local binary (ErrImagePull)", r.ns, r.name, c.spec.Name, c.spec.Image)
			continue
		}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.supervise(c) }()
	}
	r.notify()
}

func (r *podRun) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// supervise runs the container's process, restarting it (restartPolicy
// Always) with a backoff until the pod stops.
func (r *podRun) supervise(c *container) {
	backoff := time.Second
	for {
		logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.agent.cfg.Logf("nodeagent: %v", err)
			return
		}
		out := &lineWriter{f: logf, stream: "stdout"}
		errw := &lineWriter{f: logf, stream: "stderr", mu: &out.mu2}
		out.mu = &out.mu2
		cmd := exec.Command("ip", append([]string{"netns", "exec", r.netns, c.binary}, c.args...)...)
		cmd.Env = c.env
		cmd.Dir = r.dir
		cmd.Stdout, cmd.Stderr = out, errw
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := r.agent.cfg.Spawn(cmd); err != nil {
			logf.Close()
			r.agent.cfg.Logf("nodeagent: pod %s/%s container %s: start: %v", r.ns, r.name, c.spec.Name, err)
			return
		}
		c.mu.Lock()
		c.proc, c.running, c.ready, c.startedAt = cmd.Process, true, false, metav1.Now()
		c.mu.Unlock()
		r.notify()
		exited := make(chan struct{})
		go r.probe(c, cmd.Process.Pid, exited)
		err = cmd.Wait()
		close(exited)
		out.flush()
		errw.flush()
		logf.Close()
		code := int32(0)
		if cmd.ProcessState != nil {
			code = int32(cmd.ProcessState.ExitCode())
		}
		c.mu.Lock()
		c.running, c.ready, c.proc = false, false, nil
		c.lastExit = &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", StartedAt: c.startedAt, FinishedAt: metav1.Now(), Message: fmt.Sprint(err)}
		if code == 0 {
			c.lastExit.Reason = "Completed"
		}
		c.mu.Unlock()
		select {
		case <-r.stopping:
			return
		default:
		}
		r.agent.cfg.Logf("nodeagent: pod %s/%s container %s exited (%v); restarting in %v", r.ns, r.name, c.spec.Name, err, backoff)
		r.notify()
		select {
		case <-r.stopping:
			return
		case <-time.After(backoff):
		}
		if backoff < 10*time.Second {
			backoff *= 2
		}
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
	}
}

// probe marks the container ready once its process has a listening
// socket (TCP LISTEN or a bound UDP socket) in the pod's namespace and
// the set of listening sockets has been stable for 300 ms.
func (r *podRun) probe(c *container, pid int, exited chan struct{}) {
	last, stableSince := -1, time.Time{}
	for {
		select {
		case <-exited:
			return
		case <-time.After(50 * time.Millisecond):
		}
		n := listeners(pid)
		if n != last {
			last, stableSince = n, time.Now()
			continue
		}
		if n > 0 && time.Since(stableSince) >= 300*time.Millisecond {
			c.mu.Lock()
			c.ready = c.running
			c.mu.Unlock()
			r.notify()
			return
		}
	}
}

// listeners counts the listening TCP and bound UDP sockets of pid's
// network namespace.
func listeners(pid int) int {
	n := 0
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) < 4 {
				continue
			}
			if (strings.HasPrefix(f, "tcp") && fs[3] == "0A") || (strings.HasPrefix(f, "udp") && fs[3] == "07") {
				n++
			}
		}
	}
	return n
}

// statusLoop writes the pod status whenever a container changes.
func (r *podRun) statusLoop() {
	for {
		select {
		case <-r.stopping:
			return
		case <-r.changed:
		}
		err := r.agent.updatePodStatus(r.ns, r.name, r.uid, r.fillStatus)
		if err != nil {
			r.agent.cfg.Logf("nodeagent: pod %s/%s status: %v", r.ns, r.name, err)
		}
	}
}

func (r *podRun) fillStatus(pod *corev1.Pod) {
	now := metav1.Now()
	allReady, anyStarted := len(r.containers) > 0, false
	var statuses []corev1.ContainerStatus
	for _, c := range r.containers {
		c.mu.Lock()
		st := corev1.ContainerStatus{
			Name:         c.spec.Name,
			Image:        c.spec.Image,
			ImageID:      "meshgate-nodeagent://" + c.binary,
			RestartCount: c.restarts,
			Ready:        c.ready,
		}
		switch {
		case c.binary == "":
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "image " + c.spec.Image + " is not mapped to a local binary by the node agent"}
		case c.running:
			anyStarted = true
			st.Started = ptrBool(true)
			st.ContainerID = fmt.Sprintf("meshgate-nodeagent://%s/%d", r.netns, c.proc.Pid)
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
		case c.lastExit != nil:
			st.Started = ptrBool(false)
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		default:
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if c.lastExit != nil {
			st.LastTerminationState.Terminated = c.lastExit.DeepCopy()
		}
		if !c.ready {
			allReady = false
		}
		c.mu.Unlock()
		statuses = append(statuses, st)
	}
	s := &pod.Status
	s.ContainerStatuses = statuses
	if anyStarted {
		s.Phase = corev1.PodRunning
	} else {
		s.Phase = corev1.PodPending
	}
	s.HostIP = r.agent.cfg.HostIP.String()
	s.HostIPs = []corev1.HostIP{{IP: s.HostIP}}
	s.PodIP = r.ip.String()
	s.PodIPs = []corev1.PodIP{{IP: s.PodIP}}
	s.StartTime = &r.started
	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		status := corev1.ConditionFalse
		if ok {
			status, reason = corev1.ConditionTrue, ""
		}
		for i := range s.Conditions {
			if s.Conditions[i].Type == t {
				if s.Conditions[i].Status != status {
					s.Conditions[i].LastTransitionTime = now
				}
				s.Conditions[i].Status, s.Conditions[i].Reason = status, reason
				s.Conditions[i].ObservedGeneration = pod.Generation
				return
			}
		}
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now, ObservedGeneration: pod.Generation})
	}
	cond(corev1.PodScheduled, true, "")
	cond(corev1.PodReadyToStartContainers, true, "")
	cond(corev1.PodInitialized, true, "")
	cond(corev1.ContainersReady, allReady, "ContainersNotReady")
	cond(corev1.PodReady, allReady, "ContainersNotReady")
}

// stop sends SIGTERM to every process, SIGKILL after grace, waits, and
// removes the network namespace.
func (r *podRun) stop(grace time.Duration) {
	r.stopOnce.Do(func() {
		close(r.stopping)
		signal := func(sig syscall.Signal) {
			for _, c := range r.containers {
				c.mu.Lock()
				if c.proc != nil {
					_ = c.proc.Signal(sig)
				}
				c.mu.Unlock()
			}
		}
		signal(syscall.SIGTERM)
		finished := make(chan struct{})
		go func() { r.wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(grace):
			signal(syscall.SIGKILL)
			<-finished
		}
		r.removeNetwork()
		close(r.done)
	})
}

func ptrBool(b bool) *bool { return &b }

// lineWriter writes each output line to the log file prefixed with its
// time and stream: "2006-01-02T15:04:05.999999999Z07:00 stdout line".
type lineWriter struct {
	f      *os.File
	stream string
	mu     *sync.Mutex
	mu2    sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line []byte) {
	bw := bufio.NewWriter(w.f)
	fmt.Fprintf(bw, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), w.stream, line)
	_ = bw.Flush()
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}
