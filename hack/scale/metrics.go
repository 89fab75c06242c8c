package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metricSample is one scrape of the operator's Prometheus endpoint (text format).
type metricSample struct {
	at     time.Time
	series []series
}

type series struct {
	name   string
	labels map[string]string
	value  float64
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

func scrape(url string) (metricSample, error) {
	m := metricSample{at: time.Now()}
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m.series, err = parseMetrics(resp.Body)
	return m, err
}

// parseMetrics reads the Prometheus text exposition format: enough of it for counters,
// gauges and histograms (no escaped quotes in label values, which these metrics do not have).
func parseMetrics(r io.Reader) ([]series, error) {
	var out []series
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := series{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad metric line %q", line)
			}
			s.name = line[:i]
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, r, _ := strings.Cut(line, " ")
			s.name, rest = name, strings.TrimSpace(r)
		}
		v := strings.Fields(rest)
		if len(v) == 0 {
			return nil, fmt.Errorf("bad metric line %q", line)
		}
		f, err := strconv.ParseFloat(v[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %v", line, err)
		}
		s.value = f
		out = append(out, s)
	}
	return out, sc.Err()
}

func splitLabels(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			if i == 0 || s[i-1] != '\\' {
				inQuote = !inQuote
			}
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// sum adds every series of the name whose labels match (nil: every series).
func (m metricSample) sum(name string, match func(map[string]string) bool) float64 {
	total := 0.0
	for _, s := range m.series {
		if s.name == name && (match == nil || match(s.labels)) {
			total += s.value
		}
	}
	return total
}

func (m metricSample) get(name string) float64 { return m.sum(name, nil) }

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	bounds []float64 // upper bounds, ascending, +Inf last
	counts []float64
}

func (m metricSample) histogram(name string) histogram {
	type b struct{ le, n float64 }
	var bs []b
	for _, s := range m.series {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if s.labels["le"] == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, b{le, s.value})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	var h histogram
	for _, x := range bs {
		h.bounds = append(h.bounds, x.le)
		h.counts = append(h.counts, x.n)
	}
	return h
}

// minus is the histogram of the observations made between o and h.
func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: append([]float64{}, h.counts...)}
	if len(o.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

func (h histogram) count() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile interpolates linearly inside the bucket that holds the q-quantile, as
// PromQL's histogram_quantile does; NaN without observations.
func (h histogram) quantile(q float64) float64 {
	n := h.count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	prevBound, prevCount := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.bounds[i], 1) {
				return prevBound
			}
			if c == prevCount {
				return h.bounds[i]
			}
			return prevBound + (h.bounds[i]-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = h.bounds[i], c
	}
	return prevBound
}
