package metrics

import (
	"testing"
	"time"

	"github.com/meshgate/meshgate/obs"
)

func TestObserveReload(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	type want struct {
		success, failure, generation, lastSuccess, lastOK, rejected float64
		durations                                                   uint64
	}
	tests := []struct {
		name    string
		reloads []obs.Reload
		want    want
	}{
		{"none yet", nil, want{}},
		{"first config", []obs.Reload{
			{Time: t0, Generation: 1, OK: true, Duration: 500 * time.Millisecond, Listeners: 2},
		}, want{success: 1, generation: 1, lastSuccess: 1700000000.5, lastOK: 1, durations: 1}},
		{"rejected config keeps the generation", []obs.Reload{
			{Time: t0, Generation: 1, OK: true, Duration: time.Second},
			{Time: t0.Add(time.Minute), Generation: 1, Error: "bad", Duration: time.Millisecond, Rejected: 3},
		}, want{success: 1, failure: 1, generation: 1, lastSuccess: 1700000001, lastOK: 0, rejected: 3, durations: 2}},
		{"recovered", []obs.Reload{
			{Time: t0, Generation: 1, OK: true},
			{Time: t0.Add(time.Minute), Generation: 1, Error: "bad"},
			{Time: t0.Add(2 * time.Minute), Generation: 2, OK: true, Rejected: 1},
		}, want{success: 2, failure: 1, generation: 2, lastSuccess: 1700000120, lastOK: 1, rejected: 1, durations: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			for i := range tt.reloads {
				m.ObserveReload(&tt.reloads[i])
			}
			m.ObserveReload(nil) // ignored
			reg := m.Registry()
			got := want{}
			got.success, _ = value(t, reg, "meshgate_config_reloads_total", map[string]string{"result": "success"})
			got.failure, _ = value(t, reg, "meshgate_config_reloads_total", map[string]string{"result": "failure"})
			got.generation, _ = value(t, reg, "meshgate_config_generation", nil)
			got.lastSuccess, _ = value(t, reg, "meshgate_config_last_reload_success_timestamp_seconds", nil)
			got.lastOK, _ = value(t, reg, "meshgate_config_last_reload_successful", nil)
			got.rejected, _ = value(t, reg, "meshgate_config_rejected_objects", nil)
			got.durations, _, _ = histogramOf(t, reg, "meshgate_config_reload_duration_seconds", nil)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
