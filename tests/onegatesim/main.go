// Command onegatesim runs the OneGate simulator (package sim) as a process,
// for the lab and for debugging a feature in isolation:
//
//	onegatesim --listen 10.0.0.254:5030 --dir tests/onegatesim/testdata --token T
//
// It prints "onegatesim listening on <URL>" once it accepts connections, logs
// one line per request to stderr (never the token), and stops on SIGTERM or
// SIGINT. With --tls it serves HTTPS with a self-signed certificate made at
// start (for ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY tests). Documents are changed
// and faults injected through the fixture directory or the /_sim/ control
// API (see package sim).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5030", "`ADDR` to listen on (host:port; port 0 picks one)")
	dir := flag.String("dir", "", "fixture `DIR` (vrouter.json, vnet-<id>.json, vm-<id>.json, service.json, faults.json)")
	token := flag.String("token", "", "the `TOKEN` requests must carry in X-ONEGATE-TOKEN (empty: any)")
	tokenFile := flag.String("token-file", "", "read the token from `PATH` instead of --token")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate")
	quiet := flag.Bool("quiet", false, "do not log requests")
	flag.Parse()
	if err := run(*listen, *dir, *token, *tokenFile, *useTLS, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "onegatesim:", err)
		os.Exit(1)
	}
}

func run(listen, dir, token, tokenFile string, useTLS, quiet bool) error {
	if dir == "" {
		return errors.New("--dir is required")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--dir %s is not a directory", dir)
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("reading the token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	s := sim.New(dir, token)
	if !quiet {
		s.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	scheme := "http"
	if useTLS {
		cert, err := selfSigned(ln.Addr())
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("onegatesim listening on %s://%s\n", scheme, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// selfSigned makes a certificate for the listening address, valid a day.
func selfSigned(addr net.Addr) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "onegatesim"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "onegatesim"},
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		tmpl.IPAddresses = []net.IP{ta.IP}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
