package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/meshgate/meshgate/metrics"
)

// dashboard is the part of Grafana's dashboard JSON the check reads.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's panels
}

type target struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
}

// panelsWithoutQueries are the panel types that show no data.
var panelsWithoutQueries = map[string]bool{"row": true, "text": true}

// knownNames is every series name the gateway exports.
func knownNames() map[string]bool {
	known := map[string]bool{}
	for _, n := range metrics.New(metrics.Options{}).Names() {
		known[n] = true
	}
	return known
}

func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("grafana", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboards in grafana/")
	}
	known := knownNames()
	uids := map[string]string{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, errs := check(data, known)
			t.Logf("%s: %d panels", d.Title, len(d.Panels))
			for _, err := range errs {
				t.Error(err)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also used by %s", d.UID, prev)
			}
			uids[d.UID] = f
		})
	}
}

// TestCheckerCatchesMistakes runs the checker on small in-memory
// dashboards, each with one mistake, so the check cannot pass vacuously.
func TestCheckerCatchesMistakes(t *testing.T) {
	known := knownNames()
	good := `{"type":"timeseries","id":1,"title":"ok","datasource":{"type":"prometheus","uid":"${datasource}"},
		"targets":[{"refId":"A","expr":"sum(rate(meshgate_http_requests_total{route=~\"$route\"}[$__rate_interval]))"}]}`
	tests := []struct {
		name   string
		panels string
		vars   string
		want   string
	}{
		{"valid", "", "", ""},
		{"made-up metric", `{"type":"timeseries","id":2,"title":"bogus","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"rate(meshgate_made_up_total[5m])"}]}`, "", "meshgate_made_up_total"},
		{"histogram without _bucket", `{"type":"timeseries","id":2,"title":"h","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"histogram_quantile(0.9, rate(meshgate_http_request_duration_seconds[5m]))"}]}`, "",
			"meshgate_http_request_duration_seconds"},
		{"metric named by __name__", `{"type":"stat","id":2,"title":"n","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"{__name__=\"meshgate_nope\"}"}]}`, "", "meshgate_nope"},
		{"selector without a name", `{"type":"stat","id":2,"title":"n","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"{job=\"x\"}"}]}`, "", "no metric name"},
		{"syntax error", `{"type":"stat","id":2,"title":"n","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"sum(rate(meshgate_http_requests_total[5m])"}]}`, "", "parse"},
		{"panel without targets", `{"type":"timeseries","id":2,"title":"empty","datasource":{"type":"prometheus","uid":"${datasource}"},"targets":[]}`,
			"", "no targets"},
		{"hard-coded datasource", `{"type":"timeseries","id":2,"title":"ds","datasource":{"type":"prometheus","uid":"P1809F7CD0C75ACF3"},
			"targets":[{"refId":"A","expr":"meshgate_config_generation"}]}`, "", "datasource"},
		{"duplicate panel id", good, "", "panel id 1"},
		{"made-up metric in a variable", "", `,{"name":"route","type":"query","datasource":{"type":"prometheus","uid":"${datasource}"},
			"query":{"query":"label_values(meshgate_routes_info, route)","refId":"V"}}`, "meshgate_routes_info"},
		{"made-up metric in a collapsed row", `{"type":"row","id":2,"title":"r","collapsed":true,"panels":[
			{"type":"timeseries","id":3,"title":"x","datasource":{"type":"prometheus","uid":"${datasource}"},
			"targets":[{"refId":"A","expr":"meshgate_row_metric"}]}]}`, "", "meshgate_row_metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			panels := good
			if tt.panels != "" {
				panels += "," + tt.panels
			}
			doc := `{"title":"t","uid":"t","schemaVersion":39,"panels":[` + panels + `],
				"templating":{"list":[{"name":"datasource","type":"datasource","query":"prometheus"}` + tt.vars + `]}}`
			_, errs := check([]byte(doc), known)
			if tt.want == "" {
				for _, err := range errs {
					t.Errorf("unexpected: %v", err)
				}
				return
			}
			found := false
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), tt.want)
			}
			if !found {
				t.Errorf("want an error mentioning %q, got %v", tt.want, errs)
			}
		})
	}

	if _, errs := check([]byte(`{"title":"t","uid":"t","schemaVersion":39,"panels":[],
		"templating":{"list":[{"name":"datasource","type":"datasource","query":"prometheus"}]}}`), known); len(errs) == 0 {
		t.Error("a dashboard without panels passed")
	}
	if _, errs := check([]byte(`{"title":"t","uid":"t","schemaVersion":39,"panels":[`+good+`]}`), known); len(errs) == 0 {
		t.Error("a dashboard without a datasource variable passed")
	}
}

// check returns everything wrong with one dashboard.
func check(data []byte, known map[string]bool) (dashboard, []error) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return d, []error{fmt.Errorf("not valid JSON: %w", err)}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.Title == "" || d.UID == "" {
		fail("dashboard needs a title and a uid")
	}
	if d.SchemaVersion < 36 {
		fail("schemaVersion %d: want 36 or later", d.SchemaVersion)
	}

	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			_ = json.Unmarshal(v.Query, &q)
			if v.Name == "datasource" && q == "prometheus" {
				hasDS = true
			}
		case "query":
			if !usesTemplateDatasource(v.Datasource) {
				fail("variable %s: datasource must be ${datasource}", v.Name)
			}
			expr, ok := variableExpr(v.Query)
			if !ok {
				continue // label_values(label) or label_names(): no metric
			}
			for _, err := range checkExpr(expr, known) {
				fail("variable %s: %v", v.Name, err)
			}
		}
	}
	if !hasDS {
		fail(`no "datasource" template variable of type datasource for Prometheus`)
	}

	ids := map[int]bool{}
	queries := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				fail("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if panelsWithoutQueries[p.Type] {
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			if !usesTemplateDatasource(p.Datasource) {
				fail("%s: datasource must be ${datasource}", where)
			}
			if len(p.Targets) == 0 {
				fail("%s has no targets", where)
			}
			for _, tg := range p.Targets {
				queries++
				if tg.Datasource != nil && !usesTemplateDatasource(tg.Datasource) {
					fail("%s target %s: datasource must be ${datasource}", where, tg.RefID)
				}
				if strings.TrimSpace(tg.Expr) == "" {
					fail("%s target %s has no expr", where, tg.RefID)
					continue
				}
				for _, err := range checkExpr(tg.Expr, known) {
					fail("%s target %s: %v", where, tg.RefID, err)
				}
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		fail("dashboard has no panels with queries")
	}
	return d, errs
}

func usesTemplateDatasource(ds *datasource) bool {
	return ds != nil && ds.UID == "${datasource}" && (ds.Type == "" || ds.Type == "prometheus")
}

var (
	labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.+)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	queryResultRe = regexp.MustCompile(`^\s*query_result\((.+)\)\s*$`)
)

// variableExpr extracts the PromQL of a query variable, whose query is a
// string or an object with a "query" field.
func variableExpr(raw json.RawMessage) (string, bool) {
	var q string
	if json.Unmarshal(raw, &q) != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(raw, &obj) != nil {
			return "", false
		}
		q = obj.Query
	}
	for _, re := range []*regexp.Regexp{labelValuesRe, queryResultRe} {
		if m := re.FindStringSubmatch(q); m != nil {
			return m[1], true
		}
	}
	return "", false
}

var (
	// Grafana's range variables become a duration; every other variable
	// is only ever used inside a label matcher's string.
	durationVars = regexp.MustCompile(`\$\{?__(?:rate_interval|interval|range)\}?\b`)
	otherVars    = regexp.MustCompile(`\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*`)
)

// checkExpr parses expr with Grafana's variables substituted and checks
// that every metric it selects is known.
func checkExpr(expr string, known map[string]bool) []error {
	q := durationVars.ReplaceAllString(expr, "5m")
	q = otherVars.ReplaceAllString(q, "x")
	node, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return []error{fmt.Errorf("parse %q: %w", expr, err)}
	}
	var errs []error
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("selector %s has no metric name, so it cannot be checked", vs))
		case !known[name]:
			errs = append(errs, fmt.Errorf("%s is not a metric the gateway exports (in %q)", name, expr))
		}
		return nil
	})
	return errs
}
