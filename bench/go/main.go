// Command ctxtree-go-bench runs the workloads of WORKLOADS.md on Go's own context package: the
// "go" peer of ctxtree's benchmarks. It writes the rows of results.csv for impl "go" (same header,
// workloads, parameters, metrics, repetitions, median and cv as the C++ rows) and, with -json, the
// value of every repetition in the shape of Google Benchmark's JSON, which scripts/compare reads
// for its U test.
//
// The work of each row is the C++ row's work (bench/bm_*.cc), with these differences:
//   - Go 1.19 has no Cause, AfterFunc or WithoutCancel: fanout_cancel_callbacks uses the pre-1.21
//     idiom, one goroutine per callback blocked on <-ctx.Done(), and times the root's cancel until
//     every such goroutine has bumped the counter (the C++ after_funcs run inside the cancel call).
//   - chain_destroy has no go row: Go has no deterministic destruction; dropping the handles is
//     free and the work happens later in the garbage collector.
//   - timer_fire has no go row: Go 1.19 cannot run code at the fire itself. Its row is
//     timer_fire_observed, as the C++ one: each fire seen from a goroutine blocked in
//     <-ctx.Done() (Go's own AfterFunc, from 1.21, also runs f in a new goroutine), so lateness
//     includes a goroutine wake-up; 16 observer goroutines share the contexts in deadline order
//     (see timerObservers).
//   - memory is the growth of the live heap (runtime.MemStats.HeapAlloc after a GC), which
//     includes size-class rounding (Go keeps no per-object header): both bytes_per_node and
//     chunk_bytes_per_node are that figure; Go cannot see requested sizes.
//   - one-shot rows run runtime.GC() in their untimed teardown when they hold >= 1e5 nodes, so
//     that garbage of one iteration is not collected inside the next one's timed region.
//   - aged heap (one-shot rows, _aged metrics): 4·N pointer-holding objects per event, of the
//     sizes of WORKLOADS.md (all Go size classes), a random three quarters dropped (fixed seed),
//     then runtime.GC(), so the context objects (which hold pointers, hence share those spans) are
//     allocated in the freed slots among live ones: Go's GC heap after churn. Go's size classes
//     are segregated, so only the holes of a context's own class (3/8 of N) can take it. The aging
//     is done once per repetition for all its aged events (see oneShotLoop), and the settled
//     events of a repetition run before the aged ones. There is no "settled" Go heap beyond the
//     collection above.
//
// Repetitions: every row is calibrated first (loop rows: iterations until -min-time, as Google
// Benchmark does; one-shot rows: max(1, round(-oneshot-nodes / nodes)) iterations; latency rows:
// fixed counts), then each round runs every row once in a random order (Google Benchmark's random
// interleaving). Stdlib only; no module downloads.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const impl = "go"

var csvHeader = []string{"workload", "impl", "param_name", "param_value", "threads", "metric",
	"value", "unit", "repetitions", "cv"}

// sink keeps results from being optimised away (a lookup or poll itself is an interface call the
// compiler cannot remove; loops count their results and store the count once). Goroutines that
// run concurrently write their own padded slot of a []paddedSink instead, once after their loop,
// so that no two of them write one cache line.
var sink any

type paddedSink struct {
	v any
	_ [48]byte
}

type kind int

const (
	oneShot kind = iota // fixed iterations from the node budget
	loop                // calibrated to min time
	fixed               // fixed iterations (latency rows, memory)
)

// result of one call of a bench: one repetition once calibrated.
type result struct {
	timed   time.Duration      // what calibration looks at
	metrics map[string]float64 // per-repetition metric values
	events  []float64          // raw latency events (µs) of this repetition
	err     error
}

// eventMetric is a percentile over every event of every repetition.
type eventMetric struct {
	metric string
	q      float64
}

type bench struct {
	workload, param, value string
	threads                int
	kind                   kind
	units                  int // oneShot: nodes per iteration
	iters                  int // fixed: iterations per repetition; others: set by calibration
	metrics                []string
	eventMetrics           []eventMetric
	run                    func(iters int) result
}

func (b *bench) name() string {
	return b.workload + "/impl:" + impl + "/" + b.param + ":" + b.value
}

func ns(d time.Duration) float64 { return float64(d.Nanoseconds()) }
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// release drops garbage of a one-shot iteration of `units` nodes outside the timed region.
func release(units int) {
	if units >= 100_000 {
		runtime.GC()
	}
}

// agingSizes and agingSeed: the aging pattern of WORKLOADS.md ("Settled and aged heap").
var agingSizes = [...]int{32, 48, 64, 80, 96, 128, 176, 256}

const agingSeed = 0x616765645f686561

// ageHeap allocates 4·nodes pointer-holding objects of sizes drawn from agingSizes, drops a
// random three quarters of them and collects them; the returned quarter must stay alive until
// the tree built on this heap is torn down.
func ageHeap(nodes int) [][]*byte {
	rng := rand.New(rand.NewSource(agingSeed))
	blocks := make([][]*byte, 4*nodes)
	for i := range blocks {
		blocks[i] = make([]*byte, agingSizes[rng.Intn(len(agingSizes))]/8)
	}
	rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	kept := append([][]*byte(nil), blocks[:nodes]...)
	blocks = nil
	runtime.GC()
	return kept
}

// oneShotLoop runs a one-shot row: `iters` events on the settled heap, then `iters` on the aged
// one; event builds, returns the timed duration, and tears down (drops its references). The
// metric of the aged events is metric + "_aged". The aging runs once for all aged events of the
// call, 4·units·iters objects, and no collection runs between them, so each event's build lands
// in holes no earlier one filled: per event the pattern of WORKLOADS.md, at one runtime.GC() per
// repetition instead of one per event (at depth 10 that would be 1e5 collections per repetition).
func oneShotLoop(iters, units int, metric string,
	event func(aged bool) (time.Duration, error)) result {
	var timed [2]time.Duration
	for k, aged := range []bool{false, true} {
		var kept [][]*byte
		if aged {
			kept = ageHeap(units * iters)
		}
		for it := 0; it < iters; it++ {
			d, err := event(aged)
			if err != nil {
				return result{err: err}
			}
			timed[k] += d
			if !aged {
				release(units)
			}
		}
		runtime.KeepAlive(kept)
		kept = nil
		if aged {
			release(4 * units * iters)
		}
	}
	per := float64(iters * units)
	return ok(map[string]float64{metric: ns(timed[0]) / per, metric + "_aged": ns(timed[1]) / per},
		timed[0]+timed[1])
}

func ok(metrics map[string]float64, timed time.Duration) result {
	return result{timed: timed, metrics: metrics}
}
func fail(format string, args ...any) result { return result{err: fmt.Errorf(format, args...)} }

// ---------------------------------------------------------------------------------------------
// fanout_create, fanout_cancel, tree_cancel, chain_cancel

func fanoutCreate(n int) func(int) result {
	return func(iters int) result {
		kids := make([]context.Context, n)
		cancels := make([]context.CancelFunc, n)
		return oneShotLoop(iters, n, "ns_per_child", func(bool) (time.Duration, error) {
			root, cancelRoot := context.WithCancel(context.Background())
			t0 := time.Now()
			for i := 0; i < n; i++ {
				kids[i], cancels[i] = context.WithCancel(root)
			}
			timed := time.Since(t0)
			cancelRoot()
			for i := range kids {
				if kids[i].Err() != context.Canceled {
					return 0, fmt.Errorf("child %d not cancelled with its root", i)
				}
				kids[i], cancels[i] = nil, nil
			}
			return timed, nil
		})
	}
}

func fanoutCancel(n int) func(int) result {
	return func(iters int) result {
		kids := make([]context.Context, n)
		cancels := make([]context.CancelFunc, n)
		return oneShotLoop(iters, n, "ns_per_child", func(bool) (time.Duration, error) {
			root, cancelRoot := context.WithCancel(context.Background())
			for i := 0; i < n; i++ {
				kids[i], cancels[i] = context.WithCancel(root)
			}
			t0 := time.Now()
			cancelRoot()
			timed := time.Since(t0)
			for i := range kids {
				if kids[i].Err() != context.Canceled {
					return 0, fmt.Errorf("child %d not done after the root's cancel returned", i)
				}
				kids[i], cancels[i] = nil, nil
			}
			return timed, nil
		})
	}
}

// fanoutCancelCallbacks: the pre-1.21 idiom for a callback on cancellation, one goroutine per
// child blocked on <-Done(). Timed: from the root's cancel call until every goroutine has bumped
// the counter. Before the timed region every goroutine has started (it may not yet be blocked).
// Each repetition runs in a child process (-callbacks-child): the runtime never frees a dead
// goroutine's descriptor, and every later collection of the process would walk up to 1e6 of them
// (a 100x slower GC in the rows that follow).
func fanoutCancelCallbacks(n int) func(int) result {
	return func(iters int) result {
		out, err := exec.Command(os.Args[0], "-callbacks-child",
			strconv.Itoa(n)+","+strconv.Itoa(iters)).Output()
		if err != nil {
			return fail("callbacks child: %v", err)
		}
		var r struct {
			Metrics map[string]float64
			TimedNs int64
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return fail("callbacks child printed %q", out)
		}
		return ok(r.Metrics, time.Duration(r.TimedNs))
	}
}

// callbacksChild runs `iters` iterations of fanout_cancel_callbacks at n = `n` and prints the
// result as JSON (an error to stderr).
func callbacksChild(arg string) error {
	var n, iters int
	if _, err := fmt.Sscanf(arg, "%d,%d", &n, &iters); err != nil {
		return fmt.Errorf("-callbacks-child %q: %v", arg, err)
	}
	r := fanoutCancelCallbacksHere(n)(iters)
	if r.err != nil {
		return r.err
	}
	data, err := json.Marshal(map[string]any{"Metrics": r.metrics, "TimedNs": r.timed.Nanoseconds()})
	if err != nil {
		return err
	}
	fmt.Println(string(data))
	return nil
}

func fanoutCancelCallbacksHere(n int) func(int) result {
	return func(iters int) result {
		kids := make([]context.Context, n)
		cancels := make([]context.CancelFunc, n)
		return oneShotLoop(iters, n, "ns_per_child", func(bool) (time.Duration, error) {
			root, cancelRoot := context.WithCancel(context.Background())
			var fired atomic.Int64
			var started, finished sync.WaitGroup
			started.Add(n)
			finished.Add(n)
			for i := 0; i < n; i++ {
				kids[i], cancels[i] = context.WithCancel(root)
				done := kids[i].Done()
				go func() {
					started.Done()
					<-done
					fired.Add(1)
					finished.Done()
				}()
			}
			started.Wait()
			t0 := time.Now()
			cancelRoot()
			finished.Wait()
			timed := time.Since(t0)
			if got := fired.Load(); got != int64(n) {
				return 0, fmt.Errorf("%d callbacks ran, want %d", got, n)
			}
			for i := range kids {
				if kids[i].Err() != context.Canceled {
					return 0, fmt.Errorf("child %d not done after the root's cancel returned", i)
				}
				kids[i], cancels[i] = nil, nil
			}
			return timed, nil
		})
	}
}

type shape struct {
	name             string
	branching, depth int
}

func (s shape) nodes() int {
	total, level := 0, 1
	for d := 0; d < s.depth; d++ {
		level *= s.branching
		total += level
	}
	return total
}

func treeCancel(s shape) func(int) result {
	total := s.nodes()
	return func(iters int) result {
		nodes := make([]context.Context, 0, total)
		cancels := make([]context.CancelFunc, 0, total)
		return oneShotLoop(iters, total, "ns_per_node", func(bool) (time.Duration, error) {
			root, cancelRoot := context.WithCancel(context.Background())
			add := func(parent context.Context) {
				c, f := context.WithCancel(parent)
				nodes, cancels = append(nodes, c), append(cancels, f)
			}
			for j := 0; j < s.branching; j++ {
				add(root)
			}
			for p := 0; len(nodes) < total; p++ {
				for j := 0; j < s.branching; j++ {
					add(nodes[p])
				}
			}
			t0 := time.Now()
			cancelRoot()
			timed := time.Since(t0)
			for i := range nodes {
				if nodes[i].Err() != context.Canceled {
					return 0, fmt.Errorf("node %d not done after the root's cancel returned", i)
				}
				nodes[i], cancels[i] = nil, nil
			}
			nodes, cancels = nodes[:0], cancels[:0]
			return timed, nil
		})
	}
}

func chainCancel(depth int) func(int) result {
	return func(iters int) result {
		chain := make([]context.Context, depth)
		cancels := make([]context.CancelFunc, depth)
		return oneShotLoop(iters, depth, "ns_per_node", func(bool) (time.Duration, error) {
			root, cancelRoot := context.WithCancel(context.Background())
			parent := root
			for i := 0; i < depth; i++ {
				chain[i], cancels[i] = context.WithCancel(parent)
				parent = chain[i]
			}
			t0 := time.Now()
			cancelRoot()
			timed := time.Since(t0)
			for i := range chain {
				if chain[i].Err() != context.Canceled {
					return 0, fmt.Errorf("chain node %d not done after the root's cancel returned", i)
				}
				chain[i], cancels[i] = nil, nil
			}
			return timed, nil
		})
	}
}

// ---------------------------------------------------------------------------------------------
// value_lookup_*, value_create

type layerKey int // layer i binds layerKey(i); layerKey(-1) is bound nowhere
type cycleKey int // value layer j of the mixed chain binds cycleKey(j % 8)

const lookupBatch = 16

func distinctChain(depth int) context.Context {
	c := context.Background()
	for i := 0; i < depth; i++ {
		c = context.WithValue(c, layerKey(i), uint64(i))
	}
	return c
}

func lookupLoop(leaf context.Context, key any, want any) func(int) result {
	return func(iters int) result {
		found := 0
		t0 := time.Now()
		for i := 0; i < iters; i++ {
			for j := 0; j < lookupBatch; j++ {
				if leaf.Value(key) != nil {
					found++
				}
			}
		}
		timed := time.Since(t0)
		sink = found
		if got := leaf.Value(key); got != want {
			return fail("lookup returned %v, want %v", got, want)
		}
		return ok(map[string]float64{"ns_per_op": ns(timed) / float64(iters*lookupBatch)}, timed)
	}
}

func valueLookup(depth int, where string) func(int) result {
	leaf := distinctChain(depth)
	switch where {
	case "far":
		return lookupLoop(leaf, any(layerKey(0)), any(uint64(0)))
	case "near":
		return lookupLoop(leaf, any(layerKey(depth-1)), any(uint64(depth-1)))
	default:
		return lookupLoop(leaf, any(layerKey(-1)), nil)
	}
}

func valueLookupMixed(depth int) func(int) result {
	leaf := context.Background()
	values := 0
	var cancels []context.CancelFunc
	for i := 0; i < depth; i++ {
		if i%2 == 0 {
			leaf = context.WithValue(leaf, cycleKey(values%8), uint64(values))
			values++
		} else {
			var f context.CancelFunc
			leaf, f = context.WithCancel(leaf)
			cancels = append(cancels, f)
		}
	}
	farthest := 0
	if values >= 8 {
		farthest = values - 8
	}
	inner := lookupLoop(leaf, any(cycleKey(farthest%8)), any(uint64(farthest)))
	return func(iters int) result {
		r := inner(iters)
		runtime.KeepAlive(cancels)
		return r
	}
}

func valueCreate(depth int) func(int) result {
	leaf := distinctChain(depth)
	var key any = layerKey(-1)
	return func(iters int) result {
		var last context.Context
		t0 := time.Now()
		for i := 0; i < iters; i++ {
			last = context.WithValue(leaf, key, uint64(i))
		}
		timed := time.Since(t0)
		sink = last
		c := context.WithValue(leaf, key, uint64(7))
		if c.Value(key) != any(uint64(7)) || c.Value(layerKey(0)) != any(uint64(0)) {
			return fail("a new value layer does not see the right bindings")
		}
		return ok(map[string]float64{"ns_per_op": ns(timed) / float64(iters)}, timed)
	}
}

// ---------------------------------------------------------------------------------------------
// churn, churn_timeout, done_poll, lookup_under_churn, wake_latency

// withProcs runs f with GOMAXPROCS at least `threads` (the C++ rows run that many OS threads).
func withProcs(threads int, f func() result) result {
	procs := runtime.NumCPU()
	if threads > procs {
		procs = threads
	}
	old := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(old)
	return f()
}

func churn(threads int, timeout bool) func(int) result {
	return func(iters int) result {
		return withProcs(threads, func() result {
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			start := make(chan struct{})
			sinks := make([]paddedSink, threads)
			var wg sync.WaitGroup
			wg.Add(threads)
			for t := 0; t < threads; t++ {
				go func(t int) {
					defer wg.Done()
					<-start
					var c context.Context
					for i := 0; i < iters; i++ {
						var cancel context.CancelFunc
						if timeout {
							c, cancel = context.WithTimeout(parent, time.Hour)
						} else {
							c, cancel = context.WithCancel(parent)
						}
						cancel()
					}
					sinks[t].v = c
				}(t)
			}
			t0 := time.Now()
			close(start)
			wg.Wait()
			timed := time.Since(t0)
			if parent.Err() != nil {
				return fail("churn parent done")
			}
			ops := float64(iters * threads)
			m := map[string]float64{"ns_per_op": ns(timed) / ops}
			if !timeout {
				m["ops_per_sec"] = ops / timed.Seconds()
			}
			return ok(m, timed)
		})
	}
}

func donePoll(depth int) func(int) result {
	const batch = 64
	leaf := context.Background()
	var cancels []context.CancelFunc
	for i := 0; i < depth; i++ {
		var f context.CancelFunc
		leaf, f = context.WithCancel(leaf)
		cancels = append(cancels, f)
	}
	leaf.Done() // the channel is created lazily, once
	return func(iters int) result {
		done := 0
		t0 := time.Now()
		for i := 0; i < iters; i++ {
			for j := 0; j < batch; j++ {
				select {
				case <-leaf.Done():
					done++
				default:
				}
			}
		}
		timed := time.Since(t0)
		runtime.KeepAlive(cancels)
		if done != 0 {
			return fail("a live context reported done")
		}
		return ok(map[string]float64{"ns_per_op": ns(timed) / float64(iters*batch)}, timed)
	}
}

func lookupUnderChurn() func(int) result {
	const depth = 100
	root, cancelRoot := context.WithCancel(context.Background())
	leaf := context.Context(root)
	for i := 0; i < depth; i++ {
		leaf = context.WithValue(leaf, layerKey(i), uint64(i))
	}
	churned := leaf // children of the looked-up context itself
	var key any = layerKey(0)
	return func(iters int) result {
		return withProcs(2, func() result {
			var stop atomic.Bool
			var ops atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			sinks := make([]paddedSink, 1)
			go func() {
				defer wg.Done()
				var c context.Context
				for !stop.Load() {
					var cancel context.CancelFunc
					c, cancel = context.WithCancel(churned)
					cancel()
					ops.Add(1)
				}
				sinks[0].v = c
			}()
			for ops.Load() == 0 {
				runtime.Gosched()
			}
			before := ops.Load()
			found := 0
			t0 := time.Now()
			for i := 0; i < iters; i++ {
				for j := 0; j < lookupBatch; j++ {
					if leaf.Value(key) != nil {
						found++
					}
				}
			}
			timed := time.Since(t0)
			sink = found
			during := ops.Load() - before
			stop.Store(true)
			wg.Wait()
			runtime.KeepAlive(cancelRoot)
			if leaf.Value(key) != any(uint64(0)) {
				return fail("lookup under churn returned the wrong binding")
			}
			if during == 0 && timed > 200*time.Millisecond {
				return fail("the churner made no progress during the timed lookups")
			}
			return ok(map[string]float64{"ns_per_op": ns(timed) / float64(iters*lookupBatch)}, timed)
		})
	}
}

func wakeLatency(waiters int) func(int) result {
	return func(iters int) result {
		lat := make([]float64, 0, iters)
		var timed time.Duration
		for e := 0; e < iters; e++ {
			ctx, cancel := context.WithCancel(context.Background())
			woke := make([]time.Time, waiters)
			var ready atomic.Int64
			var wg sync.WaitGroup
			wg.Add(waiters)
			for i := 0; i < waiters; i++ {
				go func(i int) {
					defer wg.Done()
					done := ctx.Done()
					ready.Add(1)
					<-done
					woke[i] = time.Now()
				}(i)
			}
			for ready.Load() != int64(waiters) {
				runtime.Gosched()
			}
			time.Sleep(500 * time.Microsecond)
			tCancel := time.Now()
			cancel()
			wg.Wait()
			last := woke[0]
			for _, w := range woke {
				if w.Before(tCancel) {
					return fail("a waiter returned before the cancel call")
				}
				if w.After(last) {
					last = w
				}
			}
			timed += last.Sub(tCancel)
			lat = append(lat, us(last.Sub(tCancel)))
		}
		sorted := append([]float64(nil), lat...)
		sort.Float64s(sorted)
		return result{timed: timed, events: lat, metrics: map[string]float64{
			"p50_us": percentile(sorted, 0.50), "p99_us": percentile(sorted, 0.99)}}
	}
}

// ---------------------------------------------------------------------------------------------
// request

type requestIDKey struct{}

const requestSubCalls = 3

// request: one op = the context work of one RPC: req = WithTimeout(server, 1 s), r =
// WithValue(req, requestIDKey{}, id), then 3 sub-calls, each WithTimeout(r, 100 ms) + one
// Value(requestIDKey{}) + one Err() (Go's non-blocking "is it done"), then every cancel
// (sub-calls last-made first, then req). `server` is one cancellable context shared by every
// goroutine. Checked: every lookup found its own id, no sub-call was done before its deadline,
// the server is not done.
func request(threads int) func(int) result {
	return func(iters int) result {
		return withProcs(threads, func() result {
			server, cancelServer := context.WithCancel(context.Background())
			defer cancelServer()
			start := make(chan struct{})
			type counts struct {
				found, early int
				_            [48]byte
			}
			per := make([]counts, threads)
			var wg sync.WaitGroup
			wg.Add(threads)
			for t := 0; t < threads; t++ {
				go func(t int) {
					defer wg.Done()
					<-start
					id := uint64(t) << 40
					found, early := 0, 0
					var subs [requestSubCalls]context.CancelFunc
					for i := 0; i < iters; i++ {
						id++
						req, cancelReq := context.WithTimeout(server, time.Second)
						r := context.WithValue(req, requestIDKey{}, id)
						for k := range subs {
							var sub context.Context
							sub, subs[k] = context.WithTimeout(r, 100*time.Millisecond)
							if v, ok := sub.Value(requestIDKey{}).(uint64); ok && v == id {
								found++
							}
							if err := sub.Err(); err != nil {
								// Only past its deadline (a goroutine preempted for 100 ms).
								if d, _ := sub.Deadline(); err != context.DeadlineExceeded ||
									time.Now().Before(d) {
									early++
								}
							}
						}
						for k := len(subs) - 1; k >= 0; k-- {
							subs[k]()
						}
						cancelReq()
					}
					per[t].found, per[t].early = found, early
				}(t)
			}
			t0 := time.Now()
			close(start)
			wg.Wait()
			timed := time.Since(t0)
			for t := range per {
				if per[t].found != requestSubCalls*iters || per[t].early != 0 {
					return fail("request: goroutine %d found the id %d times of %d, %d done "+
						"before their deadline", t, per[t].found, requestSubCalls*iters, per[t].early)
				}
			}
			if server.Err() != nil {
				return fail("the server context is done")
			}
			ops := float64(iters * threads)
			return ok(map[string]float64{"ns_per_op": ns(timed) / ops,
				"ops_per_sec": ops / timed.Seconds()}, timed)
		})
	}
}

// ---------------------------------------------------------------------------------------------
// timer_fire_observed

// timerObservers goroutines watch the fires: observer k waits, in deadline order, on every
// timerObservers-th context's Done() and reads the clock when it is closed. (A goroutine per
// context costs ~20 µs each to start at n = 1e5, far more than the deadlines' spread.)
const timerObservers = 16

func timerFire(n int, seed int64) func(int) result {
	rng := rand.New(rand.NewSource(seed))
	offsets := make([]time.Duration, n)
	for i := range offsets {
		offsets[i] = time.Duration(1_000_000 + rng.Int63n(99_000_001))
	}
	order := make([]int, n) // context indices by deadline
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return offsets[order[a]] < offsets[order[b]] })
	// One attempt: n deadlines `slack` after its start, observers started; inTime tells whether
	// they were all in place before the first deadline.
	type attempt struct {
		ctxs       []context.Context
		cancels    []context.CancelFunc
		cancelRoot context.CancelFunc
		base       time.Time
		create     time.Duration
		seen       []time.Time
		all        chan struct{} // closed when every observer is done
	}
	try := func(slack time.Duration) (a attempt, inTime bool) {
		var root context.Context
		root, a.cancelRoot = context.WithCancel(context.Background())
		a.ctxs = make([]context.Context, n)
		a.cancels = make([]context.CancelFunc, n)
		t0 := time.Now()
		a.base = t0.Add(slack)
		for i := 0; i < n; i++ {
			a.ctxs[i], a.cancels[i] = context.WithDeadline(root, a.base.Add(offsets[i]))
		}
		a.create = time.Since(t0)
		a.seen = make([]time.Time, n)
		var wg sync.WaitGroup
		wg.Add(timerObservers)
		for k := 0; k < timerObservers; k++ {
			go func(k int) {
				defer wg.Done()
				for j := k; j < n; j += timerObservers {
					i := order[j]
					<-a.ctxs[i].Done()
					a.seen[i] = time.Now()
				}
			}(k)
		}
		a.all = make(chan struct{})
		go func() { wg.Wait(); close(a.all) }()
		return a, time.Now().Before(a.base.Add(time.Millisecond))
	}
	return func(iters int) result {
		var r result
		var create time.Duration
		for it := 0; it < iters; it++ {
			// As the C++ rows: an attempt that outran its slack is discarded and retried with
			// twice the slack, up to 4 attempts.
			slack := 10*time.Millisecond + time.Duration(n)*3*time.Microsecond
			a, inTime := try(slack)
			for attempt := 1; !inTime && attempt < 4; attempt++ {
				a.cancelRoot()
				<-a.all
				slack *= 2
				a, inTime = try(slack)
			}
			if !inTime {
				a.cancelRoot()
				return fail("creating the contexts outran 4 ever longer slacks")
			}
			create += a.create
			select {
			case <-a.all:
			case <-time.After(time.Until(a.base.Add(105 * time.Millisecond).Add(5 * time.Second))):
				a.cancelRoot()
				return fail("not every deadline fired within 5 s of the last one")
			}
			for i := 0; i < n; i++ {
				late := a.seen[i].Sub(a.base.Add(offsets[i]))
				if late < 0 || a.ctxs[i].Err() != context.DeadlineExceeded {
					a.cancelRoot()
					return fail("context %d: lateness %v, err %v", i, late, a.ctxs[i].Err())
				}
				r.events = append(r.events, us(late))
			}
			a.cancelRoot()
			release(n)
		}
		sorted := append([]float64(nil), r.events...)
		sort.Float64s(sorted)
		r.timed = create
		r.metrics = map[string]float64{
			"create_ns":       ns(create) / float64(iters*n),
			"p50_lateness_us": percentile(sorted, 0.50),
			"p99_lateness_us": percentile(sorted, 0.99),
			"max_lateness_us": sorted[len(sorted)-1],
		}
		return r
	}
}

// ---------------------------------------------------------------------------------------------
// memory

type memKey struct{}

// memory runs each repetition in a child process (-memory-child KIND): deleted runtime timers of
// earlier rows stay referenced from the timer heaps until the scheduler clears them, which would
// shrink the live heap in the middle of a measurement.
func memory(kind string) func(int) result {
	return func(iters int) result {
		var bytes float64
		for it := 0; it < iters; it++ {
			out, err := exec.Command(os.Args[0], "-memory-child", kind).Output()
			if err != nil {
				return fail("memory child: %v", err)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
			if err != nil {
				return fail("memory child printed %q", out)
			}
			bytes += v
		}
		perNode := bytes / float64(iters)
		return ok(map[string]float64{"bytes_per_node": perNode, "chunk_bytes_per_node": perNode},
			time.Millisecond)
	}
}

// memoryChild prints the live-heap growth per context of 1e6 contexts of one kind (value_chain:
// per layer of one chain of 1e4 WithValue layers, each under its own key, keys boxed before).
func memoryChild(kind string) error {
	n := 1_000_000
	if kind == "value_chain" {
		n = 10_000
	}
	keys := make([]any, 0, n)
	if kind == "value_chain" {
		for i := 0; i < n; i++ {
			keys = append(keys, layerKey(i))
		}
	}
	leaf := context.Background()
	// No collection while creating (only explicit ones): faster, and HeapAlloc is read after a
	// full collection either way.
	debug.SetGCPercent(-1)
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := 0; i < n; i++ {
		switch kind {
		case "cancel":
			ctxs[i], cancels[i] = context.WithCancel(root)
		case "value":
			ctxs[i] = context.WithValue(context.Background(), memKey{}, uint64(i))
		case "deadline":
			ctxs[i], cancels[i] = context.WithTimeout(root, time.Hour)
		case "value_chain":
			leaf = context.WithValue(leaf, keys[i], uint64(i))
		default:
			return fmt.Errorf("unknown memory kind %q", kind)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	after := ms.HeapAlloc
	runtime.KeepAlive(ctxs)
	runtime.KeepAlive(cancels)
	runtime.KeepAlive(keys)
	if kind == "value_chain" && leaf.Value(keys[0]) != any(uint64(0)) {
		return fmt.Errorf("value_chain: the leaf does not see the first layer")
	}
	if after <= before {
		return fmt.Errorf("heap did not grow while holding %d contexts (%d -> %d)", n, before, after)
	}
	fmt.Println(float64(after-before) / float64(n))
	return nil
}

// ---------------------------------------------------------------------------------------------
// registry of rows, mirroring bench/bm_*.cc

var units = map[string]string{
	"ns_per_child": "ns", "ns_per_node": "ns", "ns_per_op": "ns", "ops_per_sec": "ops/s",
	"p50_us": "us", "p99_us": "us", "create_ns": "ns", "p50_lateness_us": "us",
	"p99_lateness_us": "us", "max_lateness_us": "us", "bytes_per_node": "bytes",
	"chunk_bytes_per_node": "bytes", "ns_per_child_aged": "ns", "ns_per_node_aged": "ns",
}

func allBenches(seed int64) []*bench {
	var bs []*bench
	itoa := strconv.Itoa
	oneshot := func(w, p string, v int, u int, m string, run func(int) result) {
		bs = append(bs, &bench{workload: w, param: p, value: itoa(v), threads: 1, kind: oneShot,
			units: u, metrics: []string{m, m + "_aged"}, run: run})
	}
	for _, n := range []int{100, 1_000, 10_000, 100_000, 1_000_000} {
		oneshot("fanout_create", "n", n, n, "ns_per_child", fanoutCreate(n))
		oneshot("fanout_cancel", "n", n, n, "ns_per_child", fanoutCancel(n))
		oneshot("fanout_cancel_callbacks", "n", n, n, "ns_per_child", fanoutCancelCallbacks(n))
	}
	for _, s := range []shape{{"b10d5", 10, 5}, {"b2d16", 2, 16}, {"b1000d2", 1000, 2}} {
		bs = append(bs, &bench{workload: "tree_cancel", param: "shape", value: s.name, threads: 1,
			kind: oneShot, units: s.nodes(), metrics: []string{"ns_per_node", "ns_per_node_aged"},
			run: treeCancel(s)})
	}
	for _, d := range []int{10, 100, 1_000, 10_000, 100_000, 1_000_000} {
		oneshot("chain_cancel", "depth", d, d, "ns_per_node", chainCancel(d))
	}
	lazy := func(build func() func(int) result) func(int) result {
		var run func(int) result
		return func(iters int) result {
			if run == nil {
				run = build()
			}
			return run(iters)
		}
	}
	looped := func(w, p string, v, threads int, metrics []string, run func(int) result) {
		bs = append(bs, &bench{workload: w, param: p, value: itoa(v), threads: threads,
			kind: loop, metrics: metrics, run: run})
	}
	nsPerOp := []string{"ns_per_op"}
	for _, d := range []int{1, 10, 100, 1_000, 10_000} {
		d := d
		looped("value_lookup_far", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return valueLookup(d, "far") }))
		looped("value_lookup_miss", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return valueLookup(d, "miss") }))
		looped("value_lookup_near", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return valueLookup(d, "near") }))
		looped("value_lookup_mixed", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return valueLookupMixed(d) }))
		looped("value_create", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return valueCreate(d) }))
	}
	for _, t := range []int{1, 2, 4} {
		looped("churn", "threads", t, t, []string{"ns_per_op", "ops_per_sec"}, churn(t, false))
	}
	for _, t := range []int{1, 2} {
		looped("churn_timeout", "threads", t, t, nsPerOp, churn(t, true))
	}
	for _, d := range []int{1, 100} {
		d := d
		looped("done_poll", "depth", d, 1, nsPerOp,
			lazy(func() func(int) result { return donePoll(d) }))
	}
	looped("lookup_under_churn", "threads", 2, 2, nsPerOp, lazy(lookupUnderChurn))
	for _, t := range []int{1, 2, 4} {
		looped("request", "threads", t, t, []string{"ns_per_op", "ops_per_sec"}, request(t))
	}
	for _, w := range []struct{ waiters, events int }{{1, 200}, {16, 100}, {256, 25}} {
		bs = append(bs, &bench{workload: "wake_latency", param: "waiters", value: itoa(w.waiters),
			threads: w.waiters + 1, kind: fixed, iters: w.events,
			eventMetrics: []eventMetric{{"p50_us", 0.50}, {"p99_us", 0.99}},
			run:          wakeLatency(w.waiters)})
	}
	for _, n := range []int{1_000, 10_000, 100_000} {
		bs = append(bs, &bench{workload: "timer_fire_observed", param: "n", value: itoa(n), threads: 1,
			kind: fixed, iters: 1, metrics: []string{"create_ns"},
			eventMetrics: []eventMetric{{"p50_lateness_us", 0.50}, {"p99_lateness_us", 0.99},
				{"max_lateness_us", 1.0}},
			run: timerFire(n, seed)})
	}
	for _, k := range []string{"cancel", "value", "deadline", "value_chain"} {
		bs = append(bs, &bench{workload: "memory", param: "kind", value: k, threads: 1,
			kind: fixed, iters: 1, metrics: []string{"bytes_per_node", "chunk_bytes_per_node"},
			run: memory(k)})
	}
	return bs
}

// ---------------------------------------------------------------------------------------------
// statistics, shared definitions with scripts/lib/bench_stats.py and bench/bench_common.hpp

// percentile interpolates linearly between closest ranks (numpy's default); v is sorted.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(v)-1)
	lo, hi := int(math.Floor(pos)), int(math.Ceil(pos))
	return v[lo] + (v[hi]-v[lo])*(pos-float64(lo))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return percentile(s, 0.5)
}

// cv is the sample standard deviation over the mean (Google Benchmark's cv aggregate).
func cv(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	mean := 0.0
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	ss := 0.0
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	if mean == 0 {
		return 0
	}
	return math.Sqrt(ss/float64(len(v)-1)) / math.Abs(mean)
}

func format(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// ---------------------------------------------------------------------------------------------

func calibrate(b *bench, minTime time.Duration, oneshotNodes float64) error {
	switch b.kind {
	case oneShot:
		b.iters = int(math.Max(1, math.Round(oneshotNodes/float64(b.units))))
	case loop:
		iters := 1
		for {
			r := b.run(iters)
			if r.err != nil {
				return r.err
			}
			if r.timed >= minTime || iters >= 1_000_000_000 {
				break
			}
			mult := minTime.Seconds() * 1.4 / math.Max(r.timed.Seconds(), 1e-9)
			if r.timed.Seconds()/minTime.Seconds() <= 0.1 && mult > 10 {
				mult = 10
			}
			if mult <= 1 {
				mult = 2
			}
			iters = int(math.Max(mult*float64(iters), float64(iters+1)) + 0.5)
		}
		b.iters = iters
	}
	return nil
}

type record struct {
	b       *bench
	reps    []result
	elapsed time.Duration // wall time of all repetitions, setup and checks included
}

func main() {
	filter := flag.String("filter", "", "regexp matched against workload ids (default: all)")
	reps := flag.Int("reps", 0, "repetitions per row (default 9, or 3 with -quick)")
	quick := flag.Bool("quick", false, "CI mode: fewer repetitions, shorter min time")
	minTimeSec := flag.Float64("min-time", 0, "seconds per repetition of loop rows (default 0.2, quick 0.02)")
	oneshotNodes := flag.Float64("oneshot-nodes", 0, "node budget per repetition of one-shot rows (default 1e6, quick 1e5)")
	csvPath := flag.String("csv", "", "write the CSV rows here (default stdout)")
	jsonPath := flag.String("json", "", "write every repetition here, Google Benchmark JSON shape")
	list := flag.Bool("list", false, "list the rows and exit")
	seed := flag.Int64("seed", 20240601, "seed of the interleaving order and the timer deadlines")
	orderSeed := flag.Int64("order-seed", 0, "seed of the interleaving order alone (default: -seed)")
	eventsPath := flag.String("events", "", "append every latency event here, one line per repetition")
	memChild := flag.String("memory-child", "", "internal: measure one memory kind and exit")
	cbChild := flag.String("callbacks-child", "", "internal: run fanout_cancel_callbacks N,ITERS and exit")
	flag.Parse()
	if *cbChild != "" {
		if err := callbacksChild(*cbChild); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *memChild != "" {
		if err := memoryChild(*memChild); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *reps == 0 {
		*reps = map[bool]int{false: 9, true: 3}[*quick]
	}
	if *minTimeSec == 0 {
		*minTimeSec = map[bool]float64{false: 0.2, true: 0.02}[*quick]
	}
	if *oneshotNodes == 0 {
		*oneshotNodes = map[bool]float64{false: 1e6, true: 1e5}[*quick]
	}
	re, err := regexp.Compile(*filter)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -filter:", err)
		os.Exit(2)
	}
	var benches []*bench
	for _, b := range allBenches(*seed) {
		if re.MatchString(b.workload) {
			benches = append(benches, b)
		}
	}
	if *list {
		for _, b := range benches {
			fmt.Println(b.name())
		}
		return
	}
	minTime := time.Duration(*minTimeSec * float64(time.Second))
	for _, b := range benches {
		if err := calibrate(b, minTime, *oneshotNodes); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", b.name(), err)
			os.Exit(1)
		}
	}
	records := make([]*record, len(benches))
	for i, b := range benches {
		records[i] = &record{b: b}
	}
	if *orderSeed == 0 {
		*orderSeed = *seed
	}
	rng := rand.New(rand.NewSource(*orderSeed))
	failed := false
	// A line to stderr at most every 5 s, so a watcher of a long run sees it advance.
	started, lastProgress := time.Now(), time.Time{}
	for rep := 0; rep < *reps; rep++ {
		order := rng.Perm(len(records))
		for _, i := range order {
			t0 := time.Now()
			r := records[i].b.run(records[i].b.iters)
			records[i].elapsed += time.Since(t0)
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", records[i].b.name(), r.err)
				failed = true
			}
			records[i].reps = append(records[i].reps, r)
			if time.Since(lastProgress) >= 5*time.Second {
				lastProgress = time.Now()
				fmt.Fprintf(os.Stderr, "progress: %.0f s, round %d of %d, last %s\n",
					time.Since(started).Seconds(), rep+1, *reps, records[i].b.name())
			}
		}
	}
	for _, rec := range records {
		fmt.Fprintf(os.Stderr, "%-45s %9d iterations, %6.2f s per repetition\n", rec.b.name(),
			rec.b.iters, rec.elapsed.Seconds()/float64(len(rec.reps)))
	}
	if failed {
		os.Exit(1)
	}
	if err := writeCSV(*csvPath, records); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, records, *reps); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *eventsPath != "" {
		if err := writeEvents(*eventsPath, records); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// writeEvents appends the events in the C++ binaries' --ctxtree_events format (name, events
// name, values; one line per repetition), so scripts/bench can merge repetitions run in separate
// invocations and still take percentiles over every event.
func writeEvents(path string, records []*record) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, rec := range records {
		if len(rec.b.eventMetrics) == 0 {
			continue
		}
		// The C++ side's names: lateness of a fire, or latency of a wake-up.
		name := "latency_us"
		if strings.Contains(rec.b.eventMetrics[0].metric, "lateness") {
			name = "lateness_us"
		}
		for _, r := range rec.reps {
			fmt.Fprintf(w, "%s\t%s\t", rec.b.name(), name)
			for i, v := range r.events {
				if i > 0 {
					w.WriteByte(' ')
				}
				w.WriteString(strconv.FormatFloat(v, 'f', 1, 64))
			}
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeCSV(path string, records []*record) error {
	var out io.Writer = os.Stdout
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	w := csv.NewWriter(out)
	if err := w.Write(csvHeader); err != nil {
		return err
	}
	for _, rec := range records {
		b := rec.b
		row := func(metric string, value float64, perRep []float64) error {
			if math.IsNaN(value) || math.IsInf(value, 0) {
				return errors.New(b.name() + ": " + metric + " is not finite")
			}
			return w.Write([]string{b.workload, impl, b.param, b.value, strconv.Itoa(b.threads),
				metric, format(value), units[metric], strconv.Itoa(len(rec.reps)),
				strconv.FormatFloat(cv(perRep), 'g', 4, 64)})
		}
		perRep := func(metric string) []float64 {
			v := make([]float64, len(rec.reps))
			for i, r := range rec.reps {
				v[i] = r.metrics[metric]
			}
			return v
		}
		for _, m := range b.metrics {
			if err := row(m, median(perRep(m)), perRep(m)); err != nil {
				return err
			}
		}
		if len(b.eventMetrics) > 0 {
			var all []float64
			for _, r := range rec.reps {
				all = append(all, r.events...)
			}
			sort.Float64s(all)
			for _, em := range b.eventMetrics {
				if err := row(em.metric, percentile(all, em.q), perRep(em.metric)); err != nil {
					return err
				}
			}
		}
	}
	w.Flush()
	return w.Error()
}

func writeJSON(path string, records []*record, reps int) error {
	host, _ := os.Hostname()
	doc := map[string]any{
		"context": map[string]any{
			"date":               time.Now().Format(time.RFC3339),
			"host_name":          host,
			"executable":         os.Args[0],
			"num_cpus":           runtime.NumCPU(),
			"go_version":         runtime.Version(),
			"library_build_type": "release",
		},
	}
	var entries []map[string]any
	for _, rec := range records {
		for i, r := range rec.reps {
			e := map[string]any{
				"name": rec.b.name(), "run_name": rec.b.name(), "run_type": "iteration",
				"repetitions": reps, "repetition_index": i, "threads": rec.b.threads,
				"iterations": rec.b.iters, "real_time": ns(r.timed) / float64(rec.b.iters),
				"time_unit": "ns",
			}
			for k, v := range r.metrics {
				e[k] = v
			}
			entries = append(entries, e)
		}
	}
	doc["benchmarks"] = entries
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
