package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/plan"
	"github.com/meshgate/meshgate/translate"
)

// cmdPlan prints what applying --config would change, against a file
// (--config-old) or a running gateway (--against ADMIN_URL). Exit codes:
// 0 no change, 2 changes, 1 the new config is invalid (an object rejected,
// a parse error) or the plan could not be made.
func cmdPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newPath := fs.String("config", "", "the new manifest file or folder (required)")
	oldPath := fs.String("config-old", "", "the manifests in force, as a file or folder")
	against := fs.String("against", "", "admin URL of a running gateway (e.g. http://127.0.0.1:9901): its config in force, and its live traffic")
	output := fs.String("output", "text", "text or json")
	sample := fs.Duration("sample", time.Second, "with --against, how long request counters are sampled to compute requests per second")
	var tf translateFlags
	tf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return plan.ExitInvalid
	}
	if *newPath == "" || (*oldPath == "") == (*against == "") {
		fmt.Fprintln(stderr, "gateway plan: give --config and exactly one of --config-old or --against")
		return plan.ExitInvalid
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "gateway plan: --output: %q is not text or json\n", *output)
		return plan.ExitInvalid
	}

	var old *translate.Result
	source := *oldPath
	if *oldPath != "" {
		snap, err := config.LoadPath(*oldPath)
		if err != nil {
			fmt.Fprintf(stderr, "gateway plan: --config-old: %v\n", err)
			return plan.ExitInvalid
		}
		r := translate.Translate(snap, tf.options())
		old = r
	} else {
		source = adminURL(*against)
		st, err := fetchState(source)
		if err != nil {
			fmt.Fprintf(stderr, "gateway plan: --against: %v\n", err)
			return plan.ExitInvalid
		}
		old = &translate.Result{Config: st.Config, Statuses: st.Statuses}
	}

	var p plan.Plan
	snap, err := config.LoadPath(*newPath)
	if err != nil {
		p = plan.Plan{Error: err.Error()}
	} else {
		r := translate.Translate(snap, tf.options())
		p = plan.Diff(old, r)
	}
	if *against != "" && p.Error == "" && !p.Empty() {
		p.Live = sampleLive(source, *sample)
	}
	if *output == "json" {
		p.WriteJSON(stdout)
	} else {
		fmt.Fprintf(stdout, "Comparing %s with %s\n", *newPath, source)
		p.Write(stdout)
	}
	return p.ExitCode()
}

// adminURL accepts "host:port" as well as a URL.
func adminURL(s string) string {
	s = strings.TrimRight(s, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

var adminClient = &http.Client{Timeout: 10 * time.Second}

// adminGetJSON fetches an admin path into v.
func adminGetJSON(base, path string, v any) error {
	resp, err := adminClient.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// runningState is the admin /config answer.
type runningState struct {
	Generation int64                    `json:"generation"`
	Source     string                   `json:"source"`
	Config     *ir.Config               `json:"config"`
	Statuses   []translate.ObjectStatus `json:"statuses"`
}

func fetchState(base string) (*runningState, error) {
	var st runningState
	if err := adminGetJSON(base, "/config", &st); err != nil {
		return nil, err
	}
	if st.Config == nil {
		return nil, fmt.Errorf("the gateway at %s has no config in force yet", base)
	}
	return &st, nil
}

// sampleLive reads /metrics twice, window apart: open connections by
// listener and requests per second by route.
func sampleLive(base string, window time.Duration) *plan.Live {
	l := &plan.Live{Source: base, Window: window, Connections: map[string]float64{}, RPS: map[string]float64{}}
	first, err := scrape(base)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	start := time.Now()
	time.Sleep(window)
	second, err := scrape(base)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Window = time.Since(start)
	for _, s := range second {
		switch s.name {
		case "meshgate_connections_active":
			l.Connections[s.labels["listener"]] += s.value
		case "meshgate_http_requests_total":
			l.RPS[s.labels["route"]] += s.value
		}
	}
	for _, s := range first {
		if s.name == "meshgate_http_requests_total" {
			l.RPS[s.labels["route"]] -= s.value
		}
	}
	for r, d := range l.RPS {
		l.RPS[r] = max(0, d) / l.Window.Seconds()
	}
	return l
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(base string) ([]sample, error) {
	resp, err := adminClient.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s (is --metrics off?)", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "meshgate_connections_active") && !strings.HasPrefix(line, "meshgate_http_requests_total") {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseSample parses `name{a="x",b="y"} value [timestamp]`.
func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, false
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, false
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, false
			}
			s.labels[key] = val.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}
