package graceful_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/graceful"
)

// start runs Serve until the returned cancel, whose result Serve's result is.
func start(t *testing.T, h http.Handler, grace time.Duration) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- graceful.Serve(ctx, &http.Server{Handler: h, ReadHeaderTimeout: time.Second}, l, grace)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + l.Addr().String(), func() error { cancel(); err := <-done; done <- err; return err }
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	url, stop := start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), 0)
	if body, err := get(t.Context(), url); err != nil || body != "ok" {
		t.Fatalf("GET = %q, %v; want ok", body, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want nil after its context ended", err)
	}
	if _, err := get(t.Context(), url); err == nil {
		t.Fatal("still serving after Serve returned")
	}
}

// A request in flight when the context ends is answered within the grace.
func TestServeWaitsForRequestsInFlight(t *testing.T) {
	entered, finish := make(chan struct{}), make(chan struct{})
	url, stop := start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-finish
		_, _ = io.WriteString(w, "done")
	}), time.Minute)
	got := make(chan string, 1)
	go func() {
		body, err := get(context.Background(), url)
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(finish)
	if body := <-got; body != "done" {
		t.Fatalf("request in flight got %q, want done", body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

// A request that outlives the grace has its connection closed, and Serve
// still returns nil.
func TestServeClosesHungRequestsAfterGrace(t *testing.T) {
	entered := make(chan struct{})
	url, stop := start(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // hangs until its connection is closed
	}), 20*time.Millisecond)
	got := make(chan error, 1)
	go func() { _, err := get(context.Background(), url); got <- err }()
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if err := <-got; err == nil {
		t.Fatal("hung request answered, want its connection closed")
	}
}

func TestServeReturnsServeError(t *testing.T) {
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	err = graceful.Serve(t.Context(), &http.Server{ReadHeaderTimeout: time.Second}, l, 0)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve on a closed listener = %v, want its accept error", err)
	}
}

// A server runs under a context cancelled at shutdown (in main, by
// signal.NotifyContext).
func ExampleServe() {
	ctx, cancel := context.WithCancel(context.Background())
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- graceful.Serve(ctx, srv, l, 0) }()

	body, err := get(ctx, "http://"+l.Addr().String())
	fmt.Println(body, err)
	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// hello <nil>
	// stopped: <nil>
}
