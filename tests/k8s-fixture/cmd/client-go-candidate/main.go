// Command client-go-candidate is a leader-election candidate built the way
// client-go's own example (k8s.io/client-go/examples/leader-election) builds
// one: tools/leaderelection with a resourcelock.LeaseLock and ReleaseOnCancel.
// It is the reference that bench/failover.py measures lease-elector against.
//
//	client-go-candidate --id ID --lock-name NAME --lock-namespace NS \
//	    --kubeconfig PATH --listen 127.0.0.1:PORT \
//	    [--lease-duration 6s] [--renew-deadline 3s] [--retry-period 1s]
//
// Differences from the example, all needed by the benchmark:
//   - after losing leadership it competes again (a loop around the elector's
//     Run) instead of exiting; SIGTERM/SIGINT cancel the context, which
//     releases the Lease (ReleaseOnCancel) and exits 0;
//   - it serves GET /leader as JSON {"identity","is_leader","holder"} (as
//     lease-elector does) and GET /metrics with
//     client_go_candidate_api_requests_total{verb} counted by a wrapping
//     http.RoundTripper, so requests can be attributed per process.
//
// is_leader follows the callbacks an application sees: true from
// OnStartedLeading until OnStoppedLeading.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// status is what /leader reports.
type status struct {
	mu       sync.Mutex
	identity string
	isLeader bool
	holder   string
}

func (s *status) set(f func(*status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *status) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var holder *string
	if s.holder != "" {
		h := s.holder
		holder = &h
	}
	return json.Marshal(struct {
		Identity string  `json:"identity"`
		IsLeader bool    `json:"is_leader"`
		Holder   *string `json:"holder"`
	}{s.identity, s.isLeader, holder})
}

// counter counts API requests by verb (get, list, watch, create, update,
// patch, delete, other).
type counter struct {
	mu     sync.Mutex
	byVerb map[string]uint64
}

func newCounter() *counter {
	c := &counter{byVerb: map[string]uint64{}}
	for _, v := range []string{"get", "list", "watch", "create", "update"} {
		c.byVerb[v] = 0
	}
	return c
}

func verbOf(r *http.Request) string {
	switch r.Method {
	case http.MethodGet:
		if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
			return "watch"
		}
		// .../leases/NAME is a get, .../leases a list.
		if strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/leases") {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "other"
}

type countingTransport struct {
	next http.RoundTripper
	c    *counter
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	verb := verbOf(r)
	t.c.mu.Lock()
	t.c.byVerb[verb]++
	t.c.mu.Unlock()
	return t.next.RoundTrip(r)
}

func (c *counter) writeProm(w http.ResponseWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	verbs := make([]string, 0, len(c.byVerb))
	for v := range c.byVerb {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	fmt.Fprintln(w, "# HELP client_go_candidate_api_requests_total Requests sent to the API server, by verb.")
	fmt.Fprintln(w, "# TYPE client_go_candidate_api_requests_total counter")
	for _, v := range verbs {
		fmt.Fprintf(w, "client_go_candidate_api_requests_total{verb=%q} %d\n", v, c.byVerb[v])
	}
}

func main() {
	klog.InitFlags(nil)
	var (
		id, lockName, lockNamespace, kubeconfig, listen string
		leaseDuration, renewDeadline, retryPeriod       time.Duration
	)
	host, _ := os.Hostname()
	flag.StringVar(&id, "id", fmt.Sprintf("%s-%d", host, os.Getpid()), "the holder identity")
	flag.StringVar(&lockName, "lock-name", "", "the Lease name (required)")
	flag.StringVar(&lockNamespace, "lock-namespace", "default", "the Lease namespace")
	flag.StringVar(&kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: in-cluster config)")
	flag.StringVar(&listen, "listen", "127.0.0.1:0", "address of the /leader and /metrics endpoints")
	flag.DurationVar(&leaseDuration, "lease-duration", 6*time.Second, "LeaseDuration")
	flag.DurationVar(&renewDeadline, "renew-deadline", 3*time.Second, "RenewDeadline")
	flag.DurationVar(&retryPeriod, "retry-period", 1*time.Second, "RetryPeriod")
	flag.Parse()
	if lockName == "" {
		klog.Fatal("--lock-name is required")
	}

	var config *rest.Config
	var err error
	if kubeconfig != "" {
		config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		config, err = rest.InClusterConfig()
	}
	if err != nil {
		klog.Fatal(err)
	}
	requests := newCounter()
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{next: rt, c: requests}
	})
	client := clientset.NewForConfigOrDie(config)

	st := &status{identity: id}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		klog.Fatalf("cannot listen on %s: %v", listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/leader", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		requests.writeProm(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Fatalf("http: %v", err)
		}
	}()
	klog.Infof("client-go-candidate %s listening on %s", id, ln.Addr())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		klog.Info("Received termination, signaling shutdown")
		cancel()
	}()

	lock := &resourcelock.LeaseLock{
		LeaseMeta: metav1.ObjectMeta{
			Name:      lockName,
			Namespace: lockNamespace,
		},
		Client: client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{
			Identity: id,
		},
	}

	var startedLeading atomic.Bool
	for ctx.Err() == nil {
		// One round as leaderelection.RunOrDie runs it; a fresh elector per
		// round, as a process restarted by its supervisor would have.
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			ReleaseOnCancel: true,
			LeaseDuration:   leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					startedLeading.Store(true)
					st.set(func(s *status) { s.isLeader = true })
					klog.Infof("started leading: %s", id)
					<-ctx.Done()
				},
				OnStoppedLeading: func() {
					st.set(func(s *status) { s.isLeader = false })
					if startedLeading.Swap(false) {
						klog.Infof("leader lost: %s", id)
					}
				},
				OnNewLeader: func(identity string) {
					st.set(func(s *status) { s.holder = identity })
					if identity != id {
						klog.Infof("new leader elected: %s", identity)
					}
				},
			},
		})
	}

	shutdownCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	_ = srv.Shutdown(shutdownCtx)
	klog.Infof("client-go-candidate %s stopped", id)
}
