package wait_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
)

func TestSleep(t *testing.T) {
	tests := []struct {
		name    string
		d       time.Duration
		cancel  time.Duration // when ctx is cancelled; negative: before Sleep
		want    error
		wantDur time.Duration
	}{
		{"d passes", time.Second, time.Hour, nil, time.Second},
		{"ctx ends first", time.Hour, time.Second, context.Canceled, time.Second},
		{"ctx already done", time.Hour, -1, context.Canceled, 0},
		{"zero d", 0, time.Hour, nil, 0},
		{"negative d", -time.Second, time.Hour, nil, 0},
		{"negative d, ctx done", -time.Second, -1, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.cancel < 0 {
					cancel()
				} else {
					defer time.AfterFunc(tt.cancel, cancel).Stop()
				}
				start := time.Now()
				err := wait.Sleep(ctx, tt.d)
				if !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
				if got := time.Since(start); got != tt.wantDur {
					t.Errorf("returned after %s, want %s", got, tt.wantDur)
				}
			})
		})
	}
}

// A retry loop pauses between attempts and gives up when its context ends.
func ExampleSleep() {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	for attempt := 1; ; attempt++ {
		fmt.Println("attempt", attempt)
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			fmt.Println("gave up:", err)
			return
		}
	}
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// gave up: context deadline exceeded
}
