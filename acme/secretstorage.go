package acme

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Labels and annotations of the Secrets and Leases SecretStorage writes.
const (
	// StorageLabel marks every object of a SecretStorage; its value is
	// the storage's Name, so List finds them by label.
	StorageLabel = "gateway.meshgate.dev/acme-storage"
	// KeyAnnotation holds the certmagic key (or lock name) an object
	// stands for: object names are hashed, so they cannot carry it.
	KeyAnnotation = "gateway.meshgate.dev/acme-key"
	// ModifiedAnnotation is when the value was last stored (RFC 3339),
	// for Stat.
	ModifiedAnnotation = "gateway.meshgate.dev/acme-modified"
	// valueKey is the Secret data key holding the value.
	valueKey = "value"
)

// SecretStorage is a certmagic.Storage keeping every key in its own
// Kubernetes Secret of one namespace, so all replicas of a gateway share
// ACME accounts and certificates without a shared volume. Each key's
// Secret is named Name + a readable tail of the key + a hash of the whole
// key (unique and always a valid name), labelled StorageLabel=Name, with the
// key in KeyAnnotation. Locks are coordination.k8s.io Leases (see Lock), so
// only one replica orders a certificate at a time.
type SecretStorage struct {
	// Client reaches the API server.
	Client kubernetes.Interface
	// Namespace holds the Secrets and Leases.
	Namespace string
	// Name prefixes object names and is the StorageLabel value, so
	// several storages can share a namespace ("meshgate-acme" when empty).
	Name string
	// Identity names this replica as a lock holder (pod name; must
	// differ between replicas).
	Identity string
	// LockTTL is how long a lock stays held without being renewed: a
	// holder that crashed loses it after this (2 min when zero). The
	// holder renews it every LockTTL/3 until Unlock.
	LockTTL time.Duration
	// PollInterval is how often a waiting Lock looks again (1 s when
	// zero).
	PollInterval time.Duration

	// locks are the keep-alive cancels of the locks held, by name.
	locks lockSet
}

var _ certmagic.Storage = (*SecretStorage)(nil)

func (s *SecretStorage) name() string {
	if s.Name == "" {
		return "meshgate-acme"
	}
	return s.Name
}

// objectName is a valid, unique object name for key: the storage name,
// up to 40 safe characters of the key's end (to recognise it in kubectl
// get) and 16 bytes of its SHA-256.
func (s *SecretStorage) objectName(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	var tail []byte
	for i := len(key) - 1; i >= 0 && len(tail) < 40; i-- {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		default:
			c = '-'
		}
		tail = append(tail, c)
	}
	for i, j := 0, len(tail)-1; i < j; i, j = i+1, j-1 {
		tail[i], tail[j] = tail[j], tail[i]
	}
	t := strings.Trim(string(tail), "-")
	for strings.Contains(t, "--") {
		t = strings.ReplaceAll(t, "--", "-")
	}
	if t != "" {
		t += "-"
	}
	return s.name() + "-" + kind + "-" + t + hex.EncodeToString(sum[:16])
}

func (s *SecretStorage) meta(kind, key string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        s.objectName(kind, key),
		Namespace:   s.Namespace,
		Labels:      map[string]string{StorageLabel: s.name()},
		Annotations: map[string]string{KeyAnnotation: key},
	}
}

// Store writes value under key, creating or replacing its Secret.
func (s *SecretStorage) Store(ctx context.Context, key string, value []byte) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, s.objectName("data", key), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sec := &corev1.Secret{ObjectMeta: s.meta("data", key), Type: corev1.SecretTypeOpaque, Data: map[string][]byte{valueKey: value}}
			sec.Annotations[ModifiedAnnotation] = now
			_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Another replica created it first: update theirs.
				return apierrors.NewConflict(corev1.Resource("secrets"), sec.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if cur.Annotations[KeyAnnotation] != key {
			return fmt.Errorf("secret %s holds key %q, not %q", cur.Name, cur.Annotations[KeyAnnotation], key)
		}
		cur.Data = map[string][]byte{valueKey: value}
		cur.Annotations[ModifiedAnnotation] = now
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("acme secret storage: store %q: %w", key, err)
	}
	return nil
}

// get returns key's Secret, or an error wrapping fs.ErrNotExist (what
// certmagic checks for).
func (s *SecretStorage) get(ctx context.Context, key string) (*corev1.Secret, error) {
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.objectName("data", key), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && sec.Annotations[KeyAnnotation] != key) {
		return nil, fmt.Errorf("acme secret storage: %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("acme secret storage: load %q: %w", key, err)
	}
	return sec, nil
}

// Load returns key's value; an error wrapping fs.ErrNotExist when absent.
func (s *SecretStorage) Load(ctx context.Context, key string) ([]byte, error) {
	sec, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return sec.Data[valueKey], nil
}

// Exists reports whether key holds a value.
func (s *SecretStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.get(ctx, key)
	return err == nil
}

// keys lists every stored key.
func (s *SecretStorage) keys(ctx context.Context) ([]string, error) {
	list, err := s.Client.CoreV1().Secrets(s.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{StorageLabel: s.name()}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("acme secret storage: list: %w", err)
	}
	out := make([]string, 0, len(list.Items))
	for _, sec := range list.Items {
		if k, ok := sec.Annotations[KeyAnnotation]; ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// under reports whether key is prefix itself or below it ("" is the root).
func under(key, prefix string) (rest string, ok bool) {
	if prefix == "" || prefix == "." {
		return key, true
	}
	prefix = strings.TrimSuffix(prefix, "/")
	rest, ok = strings.CutPrefix(key, prefix+"/")
	return rest, ok
}

// Delete removes key and, as FileStorage does, everything below it.
func (s *SecretStorage) Delete(ctx context.Context, key string) error {
	keys, err := s.keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, below := under(k, key); k != key && !below {
			continue
		}
		err := s.Client.CoreV1().Secrets(s.Namespace).Delete(ctx, s.objectName("data", k), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("acme secret storage: delete %q: %w", k, err)
		}
	}
	return nil
}

// List returns the keys below prefix (and, like FileStorage, the
// "directories" between them); only the direct children unless
// recursive. Nothing below prefix is an error wrapping fs.ErrNotExist.
func (s *SecretStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	keys, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rest, ok := under(k, prefix)
		if !ok || rest == "" {
			continue
		}
		parts := strings.Split(rest, "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			add(path.Join(prefix, path.Join(parts[:i+1]...)))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("acme secret storage: list %q: %w", prefix, fs.ErrNotExist)
	}
	sort.Strings(out)
	return out, nil
}

// Stat describes key: a stored value, or a "directory" when only keys
// below it exist.
func (s *SecretStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	sec, err := s.get(ctx, key)
	if err == nil {
		mod, _ := time.Parse(time.RFC3339Nano, sec.Annotations[ModifiedAnnotation])
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(sec.Data[valueKey])), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	if _, lerr := s.List(ctx, key, false); lerr == nil {
		return certmagic.KeyInfo{Key: key}, nil
	}
	return certmagic.KeyInfo{}, err
}

// String names the storage in certmagic's logs.
func (s *SecretStorage) String() string {
	return "kubernetes secrets " + s.Namespace + "/" + s.name()
}
