// Command k8s-fixture starts a real etcd + kube-apiserver pair for tests.
//
//	k8s-fixture --dir DIR [--etcd-bin P] [--apiserver-bin P]
//
// On first start in DIR it generates a CA, a serving certificate, a
// service-account signing key and static tokens for the users "admin"
// (system:masters) and "restricted" (RBAC-limited). Everything, including the
// etcd data, is persisted in DIR, so a restart on the same DIR comes back with
// the same data and credentials. When the API server is ready it writes
// DIR/admin.kubeconfig, DIR/restricted.kubeconfig and DIR/fixture.json and
// prints exactly one line to stdout:
//
//	K8S_FIXTURE_READY /abs/path/to/DIR/fixture.json
//
// SIGTERM/SIGINT stops kube-apiserver, then etcd, and exits 0. Children get
// SIGKILL if the launcher dies (Pdeathsig).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	namespace      = "default"
	roleName       = "lease-elector-restricted"
	restrictedName = "restricted-lease"
	saIssuer       = "https://kubernetes.default.svc.cluster.local"
	stopTimeout    = 10 * time.Second
	readyTimeout   = 180 * time.Second
)

func init() {
	// Pdeathsig fires when the *thread* that forked the child exits. Keep the
	// main goroutine (which starts the children) on the main thread, which
	// lives as long as the process.
	runtime.LockOSThread()
}

// state is persisted in DIR/state.json.
type state struct {
	APIServerPort   int    `json:"apiserver_port"`
	EtcdClientPort  int    `json:"etcd_client_port"`
	EtcdPeerPort    int    `json:"etcd_peer_port"`
	AdminToken      string `json:"admin_token"`
	RestrictedToken string `json:"restricted_token"`
}

type fixtureInfo struct {
	Server               string `json:"server"`
	AdminKubeconfig      string `json:"admin_kubeconfig"`
	RestrictedKubeconfig string `json:"restricted_kubeconfig"`
	PID                  int    `json:"pid"`
	Namespace            string `json:"namespace"`
	CAFile               string `json:"ca_file"`
	AdminToken           string `json:"admin_token"`
	RestrictedToken      string `json:"restricted_token"`
	EtcdEndpoint         string `json:"etcd_endpoint"`
	APIServerPID         int    `json:"apiserver_pid"`
	EtcdPID              int    `json:"etcd_pid"`
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("k8s-fixture: ")
	log.SetOutput(os.Stderr)

	var dir, etcdBin, apiBin string
	flag.StringVar(&dir, "dir", "", "state directory (required); reused across restarts")
	flag.StringVar(&etcdBin, "etcd-bin", "", "etcd binary (default: sibling of this executable)")
	flag.StringVar(&apiBin, "apiserver-bin", "", "kube-apiserver binary (default: sibling of this executable)")
	flag.Parse()
	if dir == "" {
		fmt.Fprintln(os.Stderr, "usage: k8s-fixture --dir DIR [--etcd-bin P] [--apiserver-bin P]")
		os.Exit(2)
	}
	if err := run(dir, etcdBin, apiBin); err != nil {
		log.Printf("error: %v", err)
		os.Exit(1)
	}
}

func sibling(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), name)
}

func run(dir, etcdBin, apiBin string) error {
	if etcdBin == "" {
		etcdBin = sibling("etcd")
	}
	if apiBin == "" {
		apiBin = sibling("kube-apiserver")
	}
	for _, b := range []string{etcdBin, apiBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary not found: %w", err)
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}

	// One fixture per DIR at a time.
	lockf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lockf.Close()
	if err := syscall.Flock(int(lockf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("%s is in use by another k8s-fixture: %w", dir, err)
	}

	// Install signal handling before starting anything.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	st, err := loadOrInitState(dir)
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	caFile := filepath.Join(certDir, "ca.crt")
	if err := ensurePKI(certDir); err != nil {
		return err
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := ensureSAKey(saKey); err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n%s,restricted,restricted-uid\n",
		st.AdminToken, st.RestrictedToken)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}

	// Ports: reuse the previous ones when free so kubeconfigs stay valid.
	st.APIServerPort = reusePort(st.APIServerPort)
	st.EtcdClientPort = reusePort(st.EtcdClientPort)
	st.EtcdPeerPort = reusePort(st.EtcdPeerPort)
	if err := saveJSON(filepath.Join(dir, "state.json"), st); err != nil {
		return err
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", st.EtcdClientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", st.EtcdPeerPort)
	server := fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort)

	exited := make(chan childExit, 2)

	// etcd
	etcdArgs := []string{
		"--name=fixture",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=fixture=" + peerURL,
		"--initial-cluster-state=new",
		"--log-outputs=stderr",
	}
	if supportsFlag(etcdBin, "--unsafe-no-fsync") {
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	etcd, err := startChild("etcd", etcdBin, etcdArgs, filepath.Join(dir, "etcd.log"), exited)
	if err != nil {
		return err
	}
	var api *child
	stopAll := func() {
		if api != nil {
			api.stop()
		}
		etcd.stop()
	}

	if err := waitEtcd(etcdURL, exited, sigs); err != nil {
		stopAll()
		return handleWaitErr(err, "etcd", filepath.Join(dir, "etcd.log"))
	}

	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + filepath.Join(certDir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(certDir, "apiserver.key"),
		"--secure-port=" + strconv.Itoa(st.APIServerPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + tokenFile,
		"--service-account-issuer=" + saIssuer,
		"--api-audiences=" + saIssuer,
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
	}
	api, err = startChild("kube-apiserver", apiBin, apiArgs, filepath.Join(dir, "apiserver.log"), exited)
	if err != nil {
		stopAll()
		return err
	}

	client, err := newClient(caFile, st.AdminToken)
	if err != nil {
		stopAll()
		return err
	}
	if err := waitReady(client, server, exited, sigs); err != nil {
		stopAll()
		return handleWaitErr(err, "kube-apiserver", filepath.Join(dir, "apiserver.log"))
	}
	if err := bootstrap(client, server); err != nil {
		stopAll()
		return fmt.Errorf("bootstrap: %w", err)
	}

	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		stopAll()
		return err
	}
	adminKC := filepath.Join(dir, "admin.kubeconfig")
	restrictedKC := filepath.Join(dir, "restricted.kubeconfig")
	if err := writeKubeconfig(adminKC, server, caPEM, "admin", st.AdminToken); err != nil {
		stopAll()
		return err
	}
	if err := writeKubeconfig(restrictedKC, server, caPEM, "restricted", st.RestrictedToken); err != nil {
		stopAll()
		return err
	}
	infoPath := filepath.Join(dir, "fixture.json")
	info := fixtureInfo{
		Server:               server,
		AdminKubeconfig:      adminKC,
		RestrictedKubeconfig: restrictedKC,
		PID:                  os.Getpid(),
		Namespace:            namespace,
		CAFile:               caFile,
		AdminToken:           st.AdminToken,
		RestrictedToken:      st.RestrictedToken,
		EtcdEndpoint:         etcdURL,
		APIServerPID:         api.cmd.Process.Pid,
		EtcdPID:              etcd.cmd.Process.Pid,
	}
	if err := saveJSON(infoPath, info); err != nil {
		stopAll()
		return err
	}
	log.Printf("ready: %s (logs: %s/{etcd,apiserver}.log)", server, dir)
	fmt.Fprintf(os.Stdout, "K8S_FIXTURE_READY %s\n", infoPath)

	select {
	case s := <-sigs:
		log.Printf("received %v, stopping", s)
		stopAll()
		_ = os.Remove(infoPath)
		log.Printf("stopped")
		return nil
	case e := <-exited:
		stopAll()
		_ = os.Remove(infoPath)
		return fmt.Errorf("%s exited unexpectedly: %v (see %s/%s.log)", e.name, e.err, dir, strings.TrimPrefix(e.name, "kube-"))
	}
}

var errInterrupted = errors.New("interrupted")

func handleWaitErr(err error, name, logFile string) error {
	if errors.Is(err, errInterrupted) {
		log.Printf("interrupted during startup, stopped")
		os.Exit(0)
	}
	return fmt.Errorf("%s did not become ready: %w\n--- last lines of %s ---\n%s", name, err, logFile, tail(logFile, 30))
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- children

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

type childExit struct {
	name string
	err  error
}

func startChild(name, bin string, args []string, logPath string, exited chan<- childExit) (*child, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "\n===== %s: %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true, // terminal Ctrl-C goes to us only; we stop children in order
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	log.Printf("started %s (pid %d)", name, cmd.Process.Pid)
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: lf}
	go func() {
		err := cmd.Wait()
		close(c.done)
		lf.Close()
		select {
		case exited <- childExit{name: name, err: err}:
		default:
		}
	}()
	return c, nil
}

func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		log.Printf("%s stopped", c.name)
		return
	case <-time.After(stopTimeout):
	}
	log.Printf("%s did not stop within %v, killing", c.name, stopTimeout)
	_ = c.cmd.Process.Kill()
	<-c.done
}

func supportsFlag(bin, flagName string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte(flagName))
}

// ---------------------------------------------------------------- waiting

func waitEtcd(url string, exited <-chan childExit, sigs <-chan os.Signal) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
			err = fmt.Errorf("health: %d %s", resp.StatusCode, body)
		}
		last = err
		if err := pause(exited, sigs); err != nil {
			return err
		}
	}
	return fmt.Errorf("timeout after %v: %v", readyTimeout, last)
}

func waitReady(c *http.Client, server string, exited <-chan childExit, sigs <-chan os.Signal) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(server + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("readyz: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		last = err
		if err := pause(exited, sigs); err != nil {
			return err
		}
	}
	return fmt.Errorf("timeout after %v: %v", readyTimeout, last)
}

func pause(exited <-chan childExit, sigs <-chan os.Signal) error {
	select {
	case e := <-exited:
		return fmt.Errorf("%s exited: %v", e.name, e.err)
	case <-sigs:
		return errInterrupted
	case <-time.After(250 * time.Millisecond):
		return nil
	}
}

// ---------------------------------------------------------------- API calls

type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

func newClient(caFile, token string) (*http.Client, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no certificates in %s", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &bearer{token: token, rt: tr}}, nil
}

// ensureObject creates obj at collection URL; an existing object is replaced
// (PUT) so the fixture's RBAC is always the one defined here.
func ensureObject(c *http.Client, collURL, name string, obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, collURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 201 || resp.StatusCode == 200:
			return nil
		case resp.StatusCode == 409:
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, collURL+"/"+name, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			return fmt.Errorf("PUT %s/%s: %d %s", collURL, name, resp.StatusCode, rb)
		case resp.StatusCode >= 500 || resp.StatusCode == 429:
			// e.g. namespace or RBAC caches not settled yet; retry.
			select {
			case <-ctx.Done():
				return fmt.Errorf("POST %s: %d %s", collURL, resp.StatusCode, rb)
			case <-time.After(500 * time.Millisecond):
			}
		default:
			return fmt.Errorf("POST %s: %d %s", collURL, resp.StatusCode, rb)
		}
	}
}

// createIfMissing creates obj, treating AlreadyExists as success (used for
// objects tests may own afterwards, e.g. the default ServiceAccount).
func createIfMissing(c *http.Client, collURL string, obj any) error {
	body, _ := json.Marshal(obj)
	resp, err := c.Post(collURL, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 201 || resp.StatusCode == 200 || resp.StatusCode == 409 {
		return nil
	}
	return fmt.Errorf("POST %s: %d %s", collURL, resp.StatusCode, rb)
}

type m = map[string]any

func bootstrap(c *http.Client, server string) error {
	// There is no controller-manager, so the "default" ServiceAccount is
	// not created automatically; create it so `kubectl create token default`
	// works.
	if err := createIfMissing(c, server+"/api/v1/namespaces/"+namespace+"/serviceaccounts", m{
		"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": m{"name": "default", "namespace": namespace},
	}); err != nil {
		return err
	}
	role := m{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "Role",
		"metadata":   m{"name": roleName, "namespace": namespace},
		"rules": []m{
			{
				"apiGroups":     []string{"coordination.k8s.io"},
				"resources":     []string{"leases"},
				"resourceNames": []string{restrictedName},
				"verbs":         []string{"get", "watch", "list", "update", "patch"},
			},
			{
				"apiGroups": []string{"coordination.k8s.io"},
				"resources": []string{"leases"},
				"verbs":     []string{"create"},
			},
			{
				"apiGroups": []string{"", "events.k8s.io"},
				"resources": []string{"events"},
				"verbs":     []string{"create", "patch"},
			},
		},
	}
	rbacBase := server + "/apis/rbac.authorization.k8s.io/v1/namespaces/" + namespace
	if err := ensureObject(c, rbacBase+"/roles", roleName, role); err != nil {
		return err
	}
	binding := m{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "RoleBinding",
		"metadata":   m{"name": roleName, "namespace": namespace},
		"roleRef": m{
			"apiGroup": "rbac.authorization.k8s.io",
			"kind":     "Role",
			"name":     roleName,
		},
		"subjects": []m{{
			"apiGroup": "rbac.authorization.k8s.io",
			"kind":     "User",
			"name":     "restricted",
		}},
	}
	return ensureObject(c, rbacBase+"/rolebindings", roleName, binding)
}

// ---------------------------------------------------------------- files

func saveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func loadOrInitState(dir string) (*state, error) {
	p := filepath.Join(dir, "state.json")
	st := &state{}
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}
	if st.AdminToken == "" {
		st.AdminToken = randomToken()
	}
	if st.RestrictedToken == "" {
		st.RestrictedToken = randomToken()
	}
	return st, nil
}

// reusePort returns prev if it can be bound on 127.0.0.1, else a fresh port.
func reusePort(prev int) int {
	if prev > 0 {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", prev)); err == nil {
			l.Close()
			return prev
		}
		log.Printf("port %d is busy, picking a new one", prev)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func ensureSAKey(path string) error {
	if exists(path) {
		return nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return writePEM(path, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600)
}

// ensurePKI creates a CA (ca.crt/ca.key) and an apiserver serving cert
// (apiserver.crt/apiserver.key) signed by it, valid for 127.0.0.1/localhost.
func ensurePKI(certDir string) error {
	caCrt := filepath.Join(certDir, "ca.crt")
	caKey := filepath.Join(certDir, "ca.key")
	srvCrt := filepath.Join(certDir, "apiserver.crt")
	srvKey := filepath.Join(certDir, "apiserver.key")
	if exists(caCrt) && exists(caKey) && exists(srvCrt) && exists(srvKey) {
		return nil
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	ca, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8s-fixture-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &ca.PublicKey, ca)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"), net.IPv6loopback},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srv.PublicKey, ca)
	if err != nil {
		return err
	}
	if err := writePEM(caKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(ca), 0o600); err != nil {
		return err
	}
	if err := writePEM(srvKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(srv), 0o600); err != nil {
		return err
	}
	if err := writePEM(srvCrt, "CERTIFICATE", srvDER, 0o644); err != nil {
		return err
	}
	return writePEM(caCrt, "CERTIFICATE", caDER, 0o644)
}

func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	// JSON is valid YAML; kubectl and kube-rs read it as a kubeconfig.
	kc := m{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []m{{
			"name": "k8s-fixture",
			"cluster": m{
				"server":                     server,
				"certificate-authority-data": caPEM, // []byte marshals as base64
			},
		}},
		"users": []m{{
			"name": user,
			"user": m{"token": token},
		}},
		"contexts": []m{{
			"name": user + "@k8s-fixture",
			"context": m{
				"cluster":   "k8s-fixture",
				"user":      user,
				"namespace": namespace,
			},
		}},
		"current-context": user + "@k8s-fixture",
		"preferences":     m{},
	}
	return saveJSON(path, kc)
}
