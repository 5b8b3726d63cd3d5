package simagent

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/agenttest"
)

// BenchmarkFleetBoot boots n simulated agents behind one listener and waits
// until every one has looked itself up and heartbeated; it reports the
// heap and goroutines each running agent costs.
func BenchmarkFleetBoot(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			api := agenttest.NewAPI(b)
			for i := range n {
				api.AddNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("52:54:00:01:%02x:%02x", i/256, i%256))
			}
			var heapPer, gorPer float64
			for b.Loop() {
				f, stop := newFleet(b, api.URL)
				api.ForgetBeats()
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				g0 := runtime.NumGoroutine()
				for i := range n {
					mac := fmt.Sprintf("52:54:00:01:%02x:%02x", i/256, i%256)
					if _, err := f.Boot(Node{Name: fmt.Sprintf("sim-%d", i), MACs: []string{mac}, Machine: &simMachine{}}); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
				for i := range n {
					if _, err := api.AwaitHeartbeat(ctx, fmt.Sprintf("node-%d", i)); err != nil {
						b.Fatal(err)
					}
				}
				cancel()
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				heapPer = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
				gorPer = float64(runtime.NumGoroutine()-g0) / float64(n)
				b.StopTimer()
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(heapPer, "heap-B/agent")
			b.ReportMetric(gorPer, "goroutines/agent")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/agent-boot")
		})
	}
}
