package k8stest

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
	gatewayv1alpha3 "sigs.k8s.io/gateway-api/apis/v1alpha3"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	meshgatev1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// NewScheme returns a scheme holding every built-in Kubernetes group that
// client-go knows (core/v1, discovery/v1, coordination/v1, apps/v1, rbac/v1,
// admissionregistration, ...), apiextensions/v1, Gateway API v1, v1alpha2,
// v1alpha3 and v1beta1, and Meshgate's v1alpha1.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiextensionsv1.AddToScheme,
		gatewayv1.Install,
		gatewayv1alpha2.Install,
		gatewayv1alpha3.Install,
		gatewayv1beta1.Install,
		meshgatev1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
