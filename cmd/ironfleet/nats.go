package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/ironfleet/ironfleet/transport"
)

// addNATSFlags adds the flags saying how to reach an external NATS.
func addNATSFlags(f *pflag.FlagSet) {
	f.String("nats", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	f.String("nats-creds", "", "NATS credentials file")
	f.String("nats-ca", "", "CA certificate (PEM) to verify the NATS servers with")
	f.String("nats-cert", "", "client certificate (PEM) for NATS TLS")
	f.String("nats-key", "", "client key (PEM) for NATS TLS")
	f.Int("nats-connect-attempts", transport.DefaultConnectAttempts, "connection attempts at start before giving up")
}

// addReplicasFlag adds --replicas, bound to p.
func addReplicasFlag(f *pflag.FlagSet, p *int) {
	f.IntVar(p, "replicas", transport.DefaultReplicas, "replicas of the streams and KV buckets when this process creates them (3 on a cluster)")
}

// connectNATS connects with the --nats* flags.
func connectNATS(ctx context.Context, f *pflag.FlagSet, log *slog.Logger, name string) (*nats.Conn, error) {
	urls, _ := f.GetString("nats")
	creds, _ := f.GetString("nats-creds")
	ca, _ := f.GetString("nats-ca")
	cert, _ := f.GetString("nats-cert")
	key, _ := f.GetString("nats-key")
	attempts, _ := f.GetInt("nats-connect-attempts")
	cfg := transport.ConnectConfig{
		URLs:      strings.Split(urls, ","),
		Name:      name,
		CredsFile: creds,
		Attempts:  attempts,
		Logger:    log,
	}
	if ca != "" || cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca) //nolint:gosec // an operator-given path
			if err != nil {
				return nil, fmt.Errorf("--nats-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--nats-ca %s: no PEM certificate in it", ca)
			}
		}
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("--nats-cert/--nats-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		cfg.TLS = tc
	}
	return transport.Connect(ctx, cfg)
}
