package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/controller"
	"github.com/meshgate/meshgate/k8sprovider"
	"github.com/meshgate/meshgate/rollout"
)

// kubeFlags configure `gateway run --kubernetes`.
type kubeFlags struct {
	enabled        bool
	kubeconfig     string
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	gatewayService string
	addressPool    string
	// rollouts, when set, writes Rollout status and drives rollouts
	// while this replica leads.
	rollouts *rollout.Engine
}

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&k.enabled, "kubernetes", false, "take the configuration from the Kubernetes API (Gateway API and Meshgate resources) and write their status")
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file for --kubernetes outside a cluster (default: in-cluster config, then $KUBECONFIG)")
	fs.BoolVar(&k.leaderElect, "leader-elect", false, "with several replicas, elect one (a Lease) to write status; all replicas serve traffic")
	fs.StringVar(&k.leaseNamespace, "leader-elect-namespace", "", "namespace of the leader Lease (default: $POD_NAMESPACE, else default)")
	fs.StringVar(&k.leaseName, "leader-elect-lease", "meshgate-leader", "name of the leader Lease")
	fs.StringVar(&k.gatewayService, "gateway-service", "", "the data-plane Service (NAME or NAMESPACE/NAME) whose load balancer or node addresses Gateways report in status.addresses; default namespace $POD_NAMESPACE")
	fs.StringVar(&k.addressPool, "gateway-address-pool", "", "give each Gateway without spec.addresses its own address from this CIDR (for example 127.1.0.0/16 outside a cluster) and report it in status")
}

// restConfig is the in-cluster config, else the kubeconfig.
func (k *kubeFlags) restConfig() (*rest.Config, error) {
	if k.kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		} else if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, err
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		rules.ExplicitPath = k.kubeconfig
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
}

// start runs the provider, the status writer and (when asked) the leader
// election. Without --leader-elect this replica always writes status.
func (k *kubeFlags) start(ctx context.Context, ctrl *controller.Controller, controllerName string, updates chan<- config.Update, provErr chan<- error, log *slog.Logger) error {
	cfg, err := k.restConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	cfg.UserAgent = "meshgate/" + version
	// client-go's default of 5 requests/s would take 16 minutes to write
	// the status of 5,000 routes; the API server's own priority and
	// fairness still protects it.
	cfg.QPS, cfg.Burst = 100, 200
	scheme, err := k8sprovider.Scheme()
	if err != nil {
		return err
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	podNS := os.Getenv("POD_NAMESPACE")
	prov := &k8sprovider.Provider{Config: cfg, Log: log}
	sw := &k8sprovider.StatusWriter{
		Client:         cl,
		Reader:         prov.Reader,
		ControllerName: controllerName,
		Log:            log,
	}
	if k.gatewayService != "" {
		ns, name, ok := strings.Cut(k.gatewayService, "/")
		if !ok {
			ns, name = podNS, k.gatewayService
		}
		if ns == "" {
			ns = "default"
		}
		sw.GatewayService = types.NamespacedName{Namespace: ns, Name: name}
	}
	ctrl.Status = sw
	setLeader := sw.SetLeader
	if k.rollouts != nil {
		k.rollouts.Writer = &rollout.KubeWriter{Client: cl, Reader: prov.Reader}
		setLeader = func(leader bool) {
			sw.SetLeader(leader)
			k.rollouts.SetLeader(leader)
		}
	}
	go func() { provErr <- prov.Run(ctx, updates) }()
	go sw.Run(ctx)
	if !k.leaderElect {
		setLeader(true)
		return nil
	}
	ns := k.leaseNamespace
	if ns == "" {
		ns = podNS
	}
	if ns == "" {
		ns = "default"
	}
	el := &k8sprovider.Election{Config: cfg, Namespace: ns, Name: k.leaseName, Identity: replicaIdentity(), OnChange: setLeader, Log: log}
	go func() {
		if err := el.Run(ctx); err != nil {
			log.Error("leader election stopped", "error", err.Error())
		}
	}()
	return nil
}

// replicaIdentity names this replica as a Lease holder: $POD_NAME, else
// host and process id.
func replicaIdentity() string {
	if id := os.Getenv("POD_NAME"); id != "" {
		return id
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
