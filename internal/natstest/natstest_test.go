package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/natstest"
)

func newStream(t *testing.T, js jetstream.JetStream, replicas int) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return st
}

func consumeOne(t *testing.T, st jetstream.Stream) jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	return msg
}

func TestPublishConsumeAcrossRestart(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st := newStream(t, js, 1)
	if _, err := js.Publish(t.Context(), "t.one", []byte("before")); err != nil {
		t.Fatalf("publish: %v", err)
	}

	srv.Restart(t)

	// The stream and its message survive: the store directory is kept.
	msg := consumeOne(t, st)
	if got := string(msg.Data()); got != "before" {
		t.Fatalf("consumed %q after restart, want %q", got, "before")
	}
	if !nc.IsConnected() {
		// The client reconnects by itself; wait for it rather than sleeping.
		deadline := time.Now().Add(10 * time.Second)
		for !nc.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := js.Publish(t.Context(), "t.two", []byte("after")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
}

func TestClusterSurvivesNodeLoss(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc := natstest.Connect(t, c.URLs(), nats.RetryOnFailedConnect(true))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st := newStream(t, js, 3)
	for i := range 5 {
		if _, err := js.Publish(t.Context(), "t.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}

	c.Nodes[0].Stop()

	// With one of three replicas gone the stream keeps quorum: writes and
	// reads still work.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		// Each attempt gets its own deadline: a publish sent on the dying
		// connection gets no answer and must not eat the whole budget.
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(actx, "t.x", []byte("m5"), jetstream.WithMsgID("m5"))
		acancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("publish after node loss: %v", err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info after node loss: %v", err)
	}
	if info.State.Msgs != 6 {
		t.Fatalf("stream holds %d messages after node loss, want 6", info.State.Msgs)
	}

	c.Nodes[0].Restart(t)
	c.WaitReady(t)
}
