package acme

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lockSet are the locks a SecretStorage holds: each has a goroutine
// renewing its Lease, stopped (and waited for) by Unlock.
type lockSet struct {
	mu   sync.Mutex
	held map[string]heldLock
}

type heldLock struct {
	stop context.CancelFunc
	done <-chan struct{}
}

func (s *SecretStorage) lockTTL() time.Duration {
	if s.LockTTL <= 0 {
		return 2 * time.Minute
	}
	return s.LockTTL
}

func (s *SecretStorage) pollInterval() time.Duration {
	if s.PollInterval <= 0 {
		return time.Second
	}
	return s.PollInterval
}

// expired reports whether l's holder stopped renewing it more than its
// duration ago (so it crashed or lost the API server).
func expired(l *coordv1.Lease, now time.Time) bool {
	last := l.Spec.RenewTime
	if last == nil {
		last = l.Spec.AcquireTime
	}
	if last == nil || l.Spec.LeaseDurationSeconds == nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return true
	}
	return now.After(last.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// Lock takes the lock name for this replica, waiting while another holds
// it. The lock is a Lease: created if absent (the API server lets one
// create win), taken over with an optimistic update once its holder has
// not renewed it for LockTTL, renewed every LockTTL/3 while held. It
// returns ctx's error if ctx ends first.
func (s *SecretStorage) Lock(ctx context.Context, name string) error {
	if s.Identity == "" {
		return errors.New("acme secret storage: lock: no Identity")
	}
	leases := s.Client.CoordinationV1().Leases(s.Namespace)
	ttl := s.lockTTL()
	secs := int32((ttl + time.Second - 1) / time.Second)
	for {
		now := metav1.NewMicroTime(time.Now())
		l := &coordv1.Lease{ObjectMeta: s.meta("lock", name), Spec: coordv1.LeaseSpec{
			HolderIdentity: &s.Identity, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now,
		}}
		_, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if err == nil {
			s.hold(name)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("acme secret storage: lock %q: %w", name, lockCallErr(ctx, err))
		}
		cur, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue // unlocked in between: create again
		case err != nil:
			return fmt.Errorf("acme secret storage: lock %q: %w", name, lockCallErr(ctx, err))
		case expired(cur, now.Time):
			cur.Spec = l.Spec
			cur.Annotations = l.Annotations
			if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
				s.hold(name)
				return nil
			} else if !apierrors.IsConflict(err) {
				return fmt.Errorf("acme secret storage: take over stale lock %q: %w", name, lockCallErr(ctx, err))
			}
			continue // another replica took it over first
		}
		t := time.NewTimer(s.pollInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("acme secret storage: waiting for lock %q held by %s: %w", name, *cur.Spec.HolderIdentity, ctx.Err())
		case <-t.C:
		}
	}
}

// lockCallErr is err from an API call Lock made under ctx. client-go's
// rate limiter refuses a call whose wait would outlast ctx's deadline with
// an error of its own, before the context ends; for Lock's caller that is
// the context running out as much as the wait for the holder doing so, so
// it is reported as context.DeadlineExceeded too.
func lockCallErr(ctx context.Context, err error) error {
	if ctx.Err() == nil && strings.Contains(err.Error(), "would exceed context deadline") {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// hold starts renewing name's Lease until Unlock.
func (s *SecretStorage) hold(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.locks.mu.Lock()
	if s.locks.held == nil {
		s.locks.held = map[string]heldLock{}
	}
	s.locks.held[name] = heldLock{stop: cancel, done: done}
	s.locks.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(s.lockTTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if lost := s.renew(ctx, name); lost {
				return
			}
		}
	}()
}

// renew moves name's Lease renewTime to now; lost when another holds it.
// A failed call is retried at the next tick (the Lease lasts 3 ticks).
func (s *SecretStorage) renew(ctx context.Context, name string) (lost bool) {
	leases := s.Client.CoordinationV1().Leases(s.Namespace)
	cur, err := leases.Get(ctx, s.objectName("lock", name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		return false
	}
	if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != s.Identity {
		return true
	}
	now := metav1.NewMicroTime(time.Now())
	cur.Spec.RenewTime = &now
	_, _ = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return false
}

// Unlock releases a lock this replica holds: it stops renewing it and
// deletes the Lease (only if still its own, so a lock taken over after
// a stall is not released for its new holder).
func (s *SecretStorage) Unlock(ctx context.Context, name string) error {
	s.locks.mu.Lock()
	h, ok := s.locks.held[name]
	delete(s.locks.held, name)
	s.locks.mu.Unlock()
	if ok {
		h.stop()
		<-h.done
	}
	leases := s.Client.CoordinationV1().Leases(s.Namespace)
	cur, err := leases.Get(ctx, s.objectName("lock", name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("acme secret storage: unlock %q: %w", name, err)
	}
	if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != s.Identity {
		return fmt.Errorf("acme secret storage: unlock %q: held by %v, not %s", name, ptrString(cur.Spec.HolderIdentity), s.Identity)
	}
	rv := cur.ResourceVersion
	err = leases.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("acme secret storage: unlock %q: %w", name, err)
	}
	return nil
}

func ptrString(p *string) string {
	if p == nil {
		return "nobody"
	}
	return *p
}
