package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// GateError is a gate that did not pass.
type GateError struct {
	Gate  string
	Check int // 1-based: which of the checks in a row failed
	Err   error
}

func (e *GateError) Error() string {
	return fmt.Sprintf("gate %s failed (check %d): %v", e.Gate, e.Check, e.Err)
}

func (e *GateError) Unwrap() error { return e.Err }

// Gates checks each gate in order, each Checks times in a row, Interval
// apart; the first failure is returned as a *GateError.
func Gates(ctx context.Context, gates []v1alpha1.Gate, hc *http.Client) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	for _, g := range gates {
		checks := int(g.Checks)
		if checks < 1 {
			checks = 1
		}
		interval := v1alpha1.DurationOr(g.Interval, v1alpha1.DefaultGateInterval)
		timeout := v1alpha1.DurationOr(g.Timeout, v1alpha1.DefaultGateTimeout)
		for i := 0; i < checks; i++ {
			if i > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(interval):
				}
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			err := checkGate(cctx, g, hc)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &GateError{Gate: g.Name, Check: i + 1, Err: err}
			}
		}
	}
	return nil
}

func checkGate(ctx context.Context, g v1alpha1.Gate, hc *http.Client) error {
	switch g.Type {
	case v1alpha1.GateCommand:
		return commandGate(ctx, g.Command)
	case v1alpha1.GateHTTP:
		_, err := get(ctx, hc, g.URL)
		return err
	case v1alpha1.GatePrometheus:
		return prometheusGate(ctx, hc, g.URL, g.Query)
	}
	return fmt.Errorf("type %q: want Command, HTTP or Prometheus", g.Type)
}

// commandGate runs argv (no shell); exit 0 passes.
func commandGate(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		if msg != "" {
			return fmt.Errorf("%s: %w: %s", argv[0], err, msg)
		}
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// get fetches u; a 2xx passes and returns the body (up to 1 MiB).
func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, nil
}

// prometheusGate runs an instant query (the HTTP API's /api/v1/query); it
// passes when the result has at least one sample and every sample is
// non-zero.
func prometheusGate(ctx context.Context, hc *http.Client, server, query string) error {
	u := strings.TrimRight(server, "/") + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	body, err := get(ctx, hc, u)
	if err != nil {
		return err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("query %q: %w", query, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("query %q: %s %s", query, r.Status, r.Error)
	}
	var values []string
	switch r.Data.ResultType {
	case "vector":
		var samples []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &samples); err != nil {
			return fmt.Errorf("query %q: %w", query, err)
		}
		for _, s := range samples {
			v, _ := s.Value[1].(string)
			values = append(values, v)
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(r.Data.Result, &s); err != nil {
			return fmt.Errorf("query %q: %w", query, err)
		}
		v, _ := s[1].(string)
		values = append(values, v)
	default:
		return fmt.Errorf("query %q: result type %q: want vector or scalar", query, r.Data.ResultType)
	}
	if len(values) == 0 {
		return fmt.Errorf("query %q: no samples", query)
	}
	for _, v := range values {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("query %q: sample %q: %w", query, v, err)
		}
		if f == 0 {
			return fmt.Errorf("query %q: a sample is 0", query)
		}
	}
	return nil
}
