package driver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/log"
)

func TestGates(t *testing.T) {
	// A Prometheus stand-in answering /api/v1/query as the HTTP API does
	// (https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries):
	// {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[<time>,"<value>"]}]}}.
	answers := map[string]string{
		"up":      `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000.1,"1"]},{"metric":{"job":"b"},"value":[1700000000.1,"1"]}]}}`,
		"down":    `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000.1,"1"]},{"metric":{"job":"b"},"value":[1700000000.1,"0"]}]}}`,
		"none":    `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		"scalar":  `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"2"]}}`,
		"badexpr": `{"status":"error","errorType":"bad_data","error":"parse error"}`,
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/query":
			a, ok := answers[r.URL.Query().Get("query")]
			if !ok {
				http.Error(w, "no such query", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, a)
		case "/healthz":
			hits.Add(1)
			fmt.Fprint(w, "ok")
		case "/flaky": // passes twice, then fails
			if hits.Add(1) > 2 {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "ok")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	fast := &metav1.Duration{Duration: time.Millisecond}
	for _, tc := range []struct {
		description string
		gate        v1alpha1.Gate
		before      func()
		wantErr     string // "" passes
		wantHits    int32
	}{
		{description: "command exits 0", gate: v1alpha1.Gate{Type: v1alpha1.GateCommand, Command: []string{"true"}}},
		{description: "command exits 1, its output named", gate: v1alpha1.Gate{Type: v1alpha1.GateCommand, Command: []string{"sh", "-c", "echo pods not ready >&2; exit 1"}}, wantErr: "pods not ready"},
		{description: "command runs no shell", gate: v1alpha1.Gate{Type: v1alpha1.GateCommand, Command: []string{"true; false"}}, wantErr: "executable file not found"},
		{description: "command over its timeout", gate: v1alpha1.Gate{Type: v1alpha1.GateCommand, Command: []string{"sleep", "5"}, Timeout: &metav1.Duration{Duration: 50 * time.Millisecond}}, wantErr: "killed"},
		{description: "HTTP 200, checked 3 times", gate: v1alpha1.Gate{Type: v1alpha1.GateHTTP, URL: srv.URL + "/healthz", Checks: 3, Interval: fast}, before: func() { hits.Store(0) }, wantHits: 3},
		{description: "HTTP passing twice then failing: the third check fails", gate: v1alpha1.Gate{Type: v1alpha1.GateHTTP, URL: srv.URL + "/flaky", Checks: 3, Interval: fast}, before: func() { hits.Store(0) }, wantErr: "(check 3): GET " + srv.URL + "/flaky: 503"},
		{description: "HTTP 404", gate: v1alpha1.Gate{Type: v1alpha1.GateHTTP, URL: srv.URL + "/nope"}, wantErr: "404"},
		{description: "Prometheus: every sample non-zero", gate: v1alpha1.Gate{Type: v1alpha1.GatePrometheus, URL: srv.URL, Query: "up"}},
		{description: "Prometheus: a scalar", gate: v1alpha1.Gate{Type: v1alpha1.GatePrometheus, URL: srv.URL + "/", Query: "scalar"}},
		{description: "Prometheus: a zero sample", gate: v1alpha1.Gate{Type: v1alpha1.GatePrometheus, URL: srv.URL, Query: "down"}, wantErr: "a sample is 0"},
		{description: "Prometheus: no samples", gate: v1alpha1.Gate{Type: v1alpha1.GatePrometheus, URL: srv.URL, Query: "none"}, wantErr: "no samples"},
		{description: "Prometheus: an error", gate: v1alpha1.Gate{Type: v1alpha1.GatePrometheus, URL: srv.URL, Query: "badexpr"}, wantErr: "parse error"},
	} {
		t.Run(tc.description, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			tc.gate.Name = "g"
			err := Gates(context.Background(), []v1alpha1.Gate{tc.gate}, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("gate failed: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("gate: %v; want an error with %q", err, tc.wantErr)
			}
			var ge *GateError
			if err != nil && (!errors.As(err, &ge) || ge.Gate != "g") {
				t.Errorf("%v is not a GateError naming g", err)
			}
			if tc.wantHits > 0 && hits.Load() != tc.wantHits {
				t.Errorf("checked %d times, want %d", hits.Load(), tc.wantHits)
			}
		})
	}
}

func TestNodeLogger(t *testing.T) {
	var buf strings.Builder
	l := nodeLogger{node: "n1", l: log.New(&buf, 0)}
	l.V(0).Infof("[drain] evicting %d pods", 2)
	l.Warnf("lock %s", "held")
	if got := buf.String(); strings.Contains(got, "evicting") || !strings.Contains(got, "n1: lock held") {
		t.Errorf("at verbosity 0: %q; want the warning, prefixed, and no detail", got)
	}
	buf.Reset()
	nodeLogger{node: "n1", l: log.New(&buf, 1)}.V(0).Infof("[drain] evicting %d pods", 2)
	if got := buf.String(); !strings.Contains(got, "n1: [drain] evicting 2 pods") {
		t.Errorf("at verbosity 1: %q", got)
	}
}
