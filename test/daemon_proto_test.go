package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// grpcRun runs a command over gRPC (not Connect) through the daemon.
func grpcRun(t *testing.T, hc *http.Client, url string, c created, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := processconnect.NewProcessClient(hc, url, connect.WithGRPC())
	req := connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}})
	req.Header().Set("E2b-Sandbox-Id", c.SandboxID)
	req.Header().Set("X-Access-Token", c.EnvdAccessToken)
	s, err := client.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for s.Receive() {
		out.Write(s.Msg().GetEvent().GetData().GetStdout())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("gRPC stream: %v", err)
	}
	return out.String()
}

// TestDaemonGRPCOverH2C: gRPC clients reach the agent through the same
// plain-text port as REST and Connect, over HTTP/2 without TLS.
func TestDaemonGRPCOverH2C(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	c := d.create(key, map[string]any{"timeout": 60})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &p}}
	if out := grpcRun(t, hc, d.url, c, "echo", "over", "h2c"); out != "over h2c\n" {
		t.Fatalf("gRPC over h2c: %q", out)
	}
}

// TestDaemonTLS: with --tls-cert and --tls-key the one port serves HTTPS
// with HTTP/2, REST and gRPC alike.
func TestDaemonTLS(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	certFile, keyFile, pool := selfSignedCert(t)
	d := startDaemon(t, dir, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(d.url, "https://") {
		t.Fatalf("daemon URL %s", d.url)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := hc.Get(d.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("health over TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	// Plain HTTP to the TLS port is refused.
	plain := strings.Replace(d.url, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	req, _ := http.NewRequest("POST", d.url+"/sandboxes", strings.NewReader(`{"timeout":60}`))
	req.Header.Set("X-API-Key", key)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c created
	decodeJSON(t, resp, &c)
	if out := grpcRun(t, hc, d.url, c, "echo", "over", "tls"); out != "over tls\n" {
		t.Fatalf("gRPC over TLS: %q", out)
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "soulbox test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestDaemonHostRouting: with --domain, a request to the host
// <port>-<id>.<domain> reaches the sandbox's agent (deployments with a
// wildcard domain); other hosts are the control plane.
func TestDaemonHostRouting(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, "--domain", "sandbox.test")
	c := d.create(key, map[string]any{"timeout": 60})
	call := func(host, token string) int {
		req, _ := http.NewRequest("POST", d.url+"/process.Process/List", strings.NewReader("{}"))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("X-Access-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := call("49983-"+c.SandboxID+".sandbox.test", c.EnvdAccessToken); st != 200 {
		t.Fatalf("by host name: %d", st)
	}
	if st := call("49983-"+c.SandboxID+".sandbox.test:443", c.EnvdAccessToken); st != 200 {
		t.Fatalf("by host name with a port: %d", st)
	}
	if st := call("49983-"+c.SandboxID+".sandbox.test", "wrong"); st != 401 {
		t.Fatalf("by host name, wrong token: %d", st)
	}
	if st := call("49983-"+c.SandboxID+".other.test", c.EnvdAccessToken); st != 404 {
		t.Fatalf("another domain must be the control plane (404): %d", st)
	}
	var info struct {
		Domain *string `json:"domain"`
	}
	if d.call(key, "GET", "/sandboxes/"+c.SandboxID, nil, &info); info.Domain == nil || *info.Domain != "sandbox.test" {
		t.Fatalf("domain reported: %v", info.Domain)
	}
}
