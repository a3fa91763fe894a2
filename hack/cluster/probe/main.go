// Command probe proves that a Pod reaches the API server the way an in-cluster operator does: through
// the `kubernetes` Service (KUBERNETES_SERVICE_HOST/PORT, which the kubelet sets to its ClusterIP),
// trusting the cluster CA and presenting the ServiceAccount token that the kubelet projects into the
// Pod. It serves on :8080
//
//	/healthz  200 once the last check through the Service succeeded, 503 with the error before that
//	/whoami   a fresh SelfSubjectReview: {"apiserver": "<host:port>", "username": "...", "groups": [...],
//	          "uid": <this process's>, "rootFilesystemWritable": <whether "/" takes a new file>}
//
// so a readiness probe gates the Pod on in-cluster access, and a test reads, through the API
// server's service proxy, the identity the API server saw and how the container really runs.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

type identity struct {
	APIServer              string   `json:"apiserver"`
	Username               string   `json:"username"`
	Groups                 []string `json:"groups"`
	UID                    int      `json:"uid"`
	RootFilesystemWritable bool     `json:"rootFilesystemWritable"`
}

// rootFilesystemWritable tries what a compromised process would: create a file in "/".
func rootFilesystemWritable() bool {
	f, err := os.CreateTemp("/", ".probe-")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

type checker struct {
	apiserver string
	client    *http.Client

	mu   sync.Mutex
	last error
}

func newChecker() (*checker, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("KUBERNETES_SERVICE_HOST/PORT are not set: not running in a Pod with the kubernetes Service")
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("the cluster CA (kube-root-ca.crt, projected by the kubelet): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt holds no PEM certificate", serviceAccountDir)
	}
	return &checker{
		apiserver: net.JoinHostPort(host, port),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
		last: errors.New("no check yet"),
	}, nil
}

// whoami asks the API server who this Pod is. The token is read on every call: the kubelet rotates it.
func (c *checker) whoami() (identity, error) {
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return identity{}, fmt.Errorf("the ServiceAccount token: %w", err)
	}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, err := http.NewRequest(http.MethodPost, "https://"+c.apiserver+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	if err != nil {
		return identity{}, err
	}
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return identity{}, fmt.Errorf("POST selfsubjectreviews via %s: %w", c.apiserver, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return identity{}, fmt.Errorf("reading the SelfSubjectReview: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return identity{}, fmt.Errorf("POST selfsubjectreviews via %s: HTTP %d: %s", c.apiserver, resp.StatusCode, data)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &review); err != nil {
		return identity{}, fmt.Errorf("decoding the SelfSubjectReview: %w", err)
	}
	return identity{
		APIServer:              c.apiserver,
		Username:               review.Status.UserInfo.Username,
		Groups:                 review.Status.UserInfo.Groups,
		UID:                    os.Getuid(),
		RootFilesystemWritable: rootFilesystemWritable(),
	}, nil
}

func (c *checker) check() {
	_, err := c.whoami()
	if err != nil {
		log.Printf("check failed: %v", err)
	}
	c.mu.Lock()
	c.last = err
	c.mu.Unlock()
}

func (c *checker) healthz(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	err := c.last
	c.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (c *checker) whoamiHandler(w http.ResponseWriter, _ *http.Request) {
	id, err := c.whoami()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(id)
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	c, err := newChecker()
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c.check()
			time.Sleep(2 * time.Second)
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", c.healthz)
	mux.HandleFunc("/whoami", c.whoamiHandler)
	server := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		_ = server.Close()
	}()
	log.Printf("checking the API server through the kubernetes Service at %s; serving on :8080", c.apiserver)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
