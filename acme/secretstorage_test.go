package acme

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshgate/meshgate/internal/k8stest"
)

// newSecretStorages starts one API server for the test and returns n
// storages on it (the same namespace and Name, distinct identities: n
// replicas).
func newSecretStorages(t *testing.T, n int) (kubernetes.Interface, []*SecretStorage, *rest.Config) {
	t.Helper()
	cp := k8stest.Start(t, k8stest.Options{})
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshgate-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out []*SecretStorage
	for i := range n {
		out = append(out, &SecretStorage{Client: cs, Namespace: "meshgate-system", Identity: "replica-" + string(rune('a'+i)),
			LockTTL: time.Minute, PollInterval: 50 * time.Millisecond})
	}
	return cs, out, cp.Config
}

func TestSecretStorage(t *testing.T) {
	cs, ss, cfg := newSecretStorages(t, 2)
	ctx := t.Context()

	t.Run("store load list delete", func(t *testing.T) {
		a, b := ss[0], ss[1]
		long := "certificates/acme-v02.example-directory/" + strings.Repeat("sub.", 40) + "example.com/example.com.crt"
		values := map[string]string{
			"certificates/ca/example.com/example.com.crt":  "cert",
			"certificates/ca/example.com/example.com.key":  "key",
			"certificates/ca/example.com/example.com.json": "{}",
			"certificates/ca/other.org/other.org.crt":      "other",
			"acme/ca/users/ops@example.com/ops.json":       "user",
			long:                                           "long",
		}
		for k, v := range values {
			if err := a.Store(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		// Another replica sees them; a second Store replaces the value.
		if err := b.Store(ctx, "certificates/ca/other.org/other.org.crt", []byte("other2")); err != nil {
			t.Fatal(err)
		}
		values["certificates/ca/other.org/other.org.crt"] = "other2"
		for k, want := range values {
			got, err := b.Load(ctx, k)
			if err != nil || string(got) != want {
				t.Errorf("Load(%q) = %q, %v; want %q", k, got, err, want)
			}
			if !b.Exists(ctx, k) {
				t.Errorf("Exists(%q) = false", k)
			}
		}
		if _, err := a.Load(ctx, "certificates/ca/missing.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(missing) error = %v, want fs.ErrNotExist", err)
		}

		// Every object is labelled and named within the API's limits.
		list, err := cs.CoreV1().Secrets("meshgate-system").List(ctx, metav1.ListOptions{LabelSelector: StorageLabel + "=meshgate-acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != len(values) {
			t.Errorf("%d labelled Secrets, want %d", len(list.Items), len(values))
		}
		for _, s := range list.Items {
			if len(s.Name) > 253 || s.Annotations[KeyAnnotation] == "" {
				t.Errorf("Secret %s: name length %d, key %q", s.Name, len(s.Name), s.Annotations[KeyAnnotation])
			}
		}

		tests := []struct {
			prefix    string
			recursive bool
			want      []string
		}{
			{"certificates/ca", false, []string{"certificates/ca/example.com", "certificates/ca/other.org"}},
			{"certificates/ca/example.com", false, []string{
				"certificates/ca/example.com/example.com.crt", "certificates/ca/example.com/example.com.json", "certificates/ca/example.com/example.com.key"}},
			{"acme", true, []string{"acme/ca", "acme/ca/users", "acme/ca/users/ops@example.com", "acme/ca/users/ops@example.com/ops.json"}},
		}
		for _, tt := range tests {
			got, err := b.List(ctx, tt.prefix, tt.recursive)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("List(%q, %v) = %q, %v; want %q", tt.prefix, tt.recursive, got, err, tt.want)
			}
		}
		if _, err := b.List(ctx, "nothing/here", false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List(empty prefix) error = %v, want fs.ErrNotExist", err)
		}

		info, err := b.Stat(ctx, "certificates/ca/example.com/example.com.key")
		if err != nil || !info.IsTerminal || info.Size != 3 || info.Modified.IsZero() {
			t.Errorf("Stat(key) = %+v, %v", info, err)
		}
		if info, err := b.Stat(ctx, "certificates/ca/example.com"); err != nil || info.IsTerminal {
			t.Errorf("Stat(directory) = %+v, %v; want a non-terminal key", info, err)
		}

		// Deleting a "directory" removes what is below it, only that.
		if err := a.Delete(ctx, "certificates/ca/example.com"); err != nil {
			t.Fatal(err)
		}
		if b.Exists(ctx, "certificates/ca/example.com/example.com.crt") {
			t.Error("key below a deleted prefix still exists")
		}
		if !b.Exists(ctx, "certificates/ca/other.org/other.org.crt") {
			t.Error("Delete removed a key outside its prefix")
		}
		if err := a.Delete(ctx, long); err != nil || b.Exists(ctx, long) {
			t.Errorf("Delete(long key): %v, still exists: %v", err, b.Exists(ctx, long))
		}
	})

	t.Run("manager serves what another replica stored", func(t *testing.T) {
		checkServesStored(t, ss[0], ss[1])
	})

	t.Run("second locker waits for the first", func(t *testing.T) {
		a, b := ss[0], ss[1]
		if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := b.Lock(short, "issue_cert_example.com")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Lock while held = %v, want it to wait until its context ends", err)
		}
		got := make(chan error, 1)
		go func() { got <- b.Lock(ctx, "issue_cert_example.com") }()
		if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("second Lock after Unlock: %v", err)
		}
		if h := holder(t, cs, b, "issue_cert_example.com"); h != b.Identity {
			t.Errorf("Lease holder = %q, want %q", h, b.Identity)
		}
		// Unlocking another's lock is refused and leaves it held.
		if err := a.Unlock(ctx, "issue_cert_example.com"); err == nil {
			t.Error("Unlock of a lock held by another replica succeeded")
		}
		if err := b.Unlock(ctx, "issue_cert_example.com"); err != nil {
			t.Fatal(err)
		}
		if h := holder(t, cs, b, "issue_cert_example.com"); h != "" {
			t.Errorf("Lease still held by %q after Unlock", h)
		}
	})

	t.Run("a throttled wait ends with the context", func(t *testing.T) {
		// A client allowed one call now and one every 2 s: the Lease Get
		// after the failed Create cannot go out before the context ends,
		// and client-go says so before it does.
		slowCfg := rest.CopyConfig(cfg)
		slowCfg.QPS, slowCfg.Burst = 0.5, 1
		slow, err := kubernetes.NewForConfig(slowCfg)
		if err != nil {
			t.Fatal(err)
		}
		c := &SecretStorage{Client: slow, Namespace: "meshgate-system", Identity: "replica-throttled", LockTTL: time.Minute, PollInterval: 50 * time.Millisecond}
		const name = "issue_cert_throttled.example"
		if err := ss[0].Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		defer ss[0].Unlock(ctx, name)
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err = c.Lock(short, name)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("throttled Lock = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("stale lock is taken over", func(t *testing.T) {
		a := ss[0]
		// A replica that crashed an hour ago, holding a one-minute lock.
		past := metav1.NewMicroTime(time.Now().Add(-time.Hour))
		crashed, secs := "crashed-replica", int32(60)
		l := &coordv1.Lease{ObjectMeta: a.meta("lock", "issue_cert_stale.example"), Spec: coordv1.LeaseSpec{
			HolderIdentity: &crashed, LeaseDurationSeconds: &secs, AcquireTime: &past, RenewTime: &past}}
		if _, err := cs.CoordinationV1().Leases("meshgate-system").Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := a.Lock(ctx, "issue_cert_stale.example"); err != nil {
			t.Fatal(err)
		}
		if h := holder(t, cs, a, "issue_cert_stale.example"); h != a.Identity {
			t.Errorf("Lease holder = %q, want %q", h, a.Identity)
		}
		if err := a.Unlock(ctx, "issue_cert_stale.example"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("held lock is renewed, not taken over", func(t *testing.T) {
		a, b := ss[0], ss[1]
		// A short TTL: a's lock must outlive it because a renews it.
		a2 := &SecretStorage{Client: a.Client, Namespace: a.Namespace, Identity: a.Identity, LockTTL: 2 * time.Second, PollInterval: 50 * time.Millisecond}
		if err := a2.Lock(ctx, "renewed"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 4500*time.Millisecond)
		err := b.Lock(short, "renewed")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock of a renewed lock = %v, want it still waiting when its context ends", err)
		}
		if err := a2.Unlock(ctx, "renewed"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		a, b := ss[0], ss[1]
		if err := a.Lock(ctx, "cancel"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { got <- b.Lock(wctx, "cancel") }()
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Errorf("Lock after cancel = %v, want context.Canceled", err)
		}
		if h := holder(t, cs, a, "cancel"); h != a.Identity {
			t.Errorf("Lease holder = %q, want %q", h, a.Identity)
		}
		if err := a.Unlock(ctx, "cancel"); err != nil {
			t.Fatal(err)
		}
	})
}

// holder is the identity holding lock name, "" when there is no Lease.
func holder(t *testing.T, cs kubernetes.Interface, s *SecretStorage, name string) string {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(s.Namespace).Get(t.Context(), s.objectName("lock", name), metav1.GetOptions{})
	if err != nil {
		return ""
	}
	if l.Labels[StorageLabel] != s.name() || l.Annotations[KeyAnnotation] != name {
		t.Errorf("Lease %s: labels %v, annotations %v", l.Name, l.Labels, l.Annotations)
	}
	return ptrString(l.Spec.HolderIdentity)
}

func TestObjectName(t *testing.T) {
	s := &SecretStorage{}
	tests := []struct{ key, want string }{
		{"certificates/ca/example.com/x.crt", "meshgate-acme-data-certificates-ca-example-com-x-crt-"},
		{"certificates/ca/example.com/example.com.crt", "meshgate-acme-data-tificates-ca-example-com-example-com-crt-"},
		{"acme/ops@EXAMPLE.com/a.json", "meshgate-acme-data-acme-ops-example-com-a-json-"},
		{"///", "meshgate-acme-data-"},
	}
	for _, tt := range tests {
		got := s.objectName("data", tt.key)
		if !strings.HasPrefix(got, tt.want) || len(got) != len(tt.want)+32 {
			t.Errorf("objectName(%q) = %q, want %q + 32 hex digits", tt.key, got, tt.want)
		}
	}
	if s.objectName("data", "a/b") == s.objectName("data", "a-b") {
		t.Error("keys with the same readable tail share a name")
	}
}
