package rollout

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// KubeWriter writes Rollout status through the API server's status
// subresource, reading the object from the provider's cache.
type KubeWriter struct {
	Client client.Client
	// Reader is the provider's cache (nil until it has synced).
	Reader func() client.Reader
}

// WriteStatus replaces the status of namespace/name with st.
func (w *KubeWriter) WriteStatus(ctx context.Context, namespace, name string, st *mgv1alpha1.RolloutStatus) error {
	var rd client.Reader = w.Client
	if w.Reader != nil {
		if r := w.Reader(); r != nil {
			rd = r
		}
	}
	ro := &mgv1alpha1.Rollout{}
	if err := rd.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, ro); err != nil {
		return err
	}
	ro = ro.DeepCopy()
	ro.Status = *st.DeepCopy()
	err := w.Client.Status().Update(ctx, ro)
	if err != nil && rd != client.Reader(w.Client) {
		// A stale cache gives a conflict: read from the API and retry once.
		if err2 := w.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, ro); err2 != nil {
			return errors.Join(err, err2)
		}
		ro.Status = *st.DeepCopy()
		err = w.Client.Status().Update(ctx, ro)
	}
	return err
}
