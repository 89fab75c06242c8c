package main

import (
	"context"
	"os"
	"sync"
	"time"
)

// sampler reads /proc of the operator every interval, and scrapes its metrics every
// fifth time, for the peaks and means of a window.
type sampler struct {
	pid      int
	url      string
	interval time.Duration

	mu      sync.Mutex
	procs   []procSample
	scrapes []metricSample
}

func newSampler(pid int, url string, interval time.Duration) *sampler {
	return &sampler{pid: pid, url: url, interval: interval}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for n := 0; ; n++ {
		if p, err := readProc(s.pid); err == nil {
			s.mu.Lock()
			s.procs = append(s.procs, p)
			s.mu.Unlock()
		}
		if n%5 == 0 {
			if m, err := scrape(s.url); err == nil {
				s.mu.Lock()
				s.scrapes = append(s.scrapes, m)
				s.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) between(a, b time.Time) ([]procSample, []metricSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []procSample
	var ms []metricSample
	for _, p := range s.procs {
		if !p.at.Before(a) && !p.at.After(b) {
			ps = append(ps, p)
		}
	}
	for _, m := range s.scrapes {
		if !m.at.Before(a) && !m.at.After(b) {
			ms = append(ms, m)
		}
	}
	return ps, ms
}

// window is one measured stretch of time: the readings at both ends and the samples
// between them.
type window struct {
	name         string
	start, end   time.Time
	p0, p1       procSample
	self0, self1 procSample // this program: the emulator and the benchmark's watch
	m0, m1       metricSample
	c0, c1       map[string]int64
	procs        []procSample
	scrapes      []metricSample
	conns        []tcpConn
}

func (b *bench) begin(name string) *window {
	w := &window{name: name, start: time.Now()}
	w.p0, _ = readProc(b.op.pid())
	w.self0, _ = readProc(os.Getpid())
	w.m0, _ = scrape(b.metrics)
	w.c0 = b.calls.snapshot()
	return w
}

func (b *bench) end(_ context.Context, w *window) (*window, error) {
	var err error
	w.end = time.Now()
	if w.p1, err = readProc(b.op.pid()); err != nil {
		return nil, err
	}
	w.self1, _ = readProc(os.Getpid())
	if w.m1, err = scrape(b.metrics); err != nil {
		return nil, err
	}
	w.c1 = b.calls.snapshot()
	w.conns, _ = tcpConnsOf(b.op.pid())
	w.procs, w.scrapes = b.sampler.between(w.start, w.end)
	w.procs = append(append([]procSample{w.p0}, w.procs...), w.p1)
	w.scrapes = append(append([]metricSample{w.m0}, w.scrapes...), w.m1)
	return w, nil
}

// measure is a window of d in which the benchmark does nothing.
func (b *bench) measure(ctx context.Context, name string, d time.Duration, _ func()) (*window, error) {
	w := b.begin(name)
	if err := sleep(ctx, d); err != nil {
		return nil, err
	}
	if err := b.op.exited(); err != nil {
		return nil, err
	}
	return b.end(ctx, w)
}

func (w *window) seconds() float64 { return w.end.Sub(w.start).Seconds() }

// cpuPercent is the operator's CPU time over the window, in % of one core.
func (w *window) cpuPercent() float64 {
	return float64(w.p1.cpuTicks-w.p0.cpuTicks) / clkTck / w.seconds() * 100
}

func (w *window) selfCPUPercent() float64 {
	return float64(w.self1.cpuTicks-w.self0.cpuTicks) / clkTck / w.seconds() * 100
}

func (w *window) rssMiB() (mean, max float64) {
	var sum float64
	for _, p := range w.procs {
		v := float64(p.rssKiB) / 1024
		sum += v
		if v > max {
			max = v
		}
	}
	return sum / float64(len(w.procs)), max
}

func (w *window) maxProc(f func(procSample) int) int {
	m := 0
	for _, p := range w.procs {
		if v := f(p); v > m {
			m = v
		}
	}
	return m
}

func (w *window) maxMetric(name string) float64 {
	m := 0.0
	for _, s := range w.scrapes {
		if v := s.get(name); v > m {
			m = v
		}
	}
	return m
}

func (w *window) rate(name string, match func(map[string]string) bool) float64 {
	return (w.m1.sum(name, match) - w.m0.sum(name, match)) / w.seconds()
}
