package scenario

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "none", want: nil},
		{in: "kill", want: []string{"kill"}},
		{in: "kill, clickhouse,kill", want: []string{"kill", "clickhouse"}},
		{in: "all", want: AllFaults},
		{in: "zendesk-429,all", want: []string{"zendesk-429", "kill", "clickhouse", "zendesk-5xx", "zendesk-drop", "disk-full"}},
		{in: "kill,boom,fire", err: "unknown fault kinds boom, fire"},
	} {
		got, err := ParseFaults(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestScheduleIsBoundedAndFair(t *testing.T) {
	d := 60 * time.Second
	for seed := range uint64(50) {
		plan := schedule(AllFaults, 8, d, rand.New(rand.NewPCG(seed, 1)))
		if len(plan) != 8 {
			t.Fatalf("%d faults planned, want 8", len(plan))
		}
		seen := map[string]int{}
		for i, f := range plan {
			seen[f.Kind]++
			if i < len(AllFaults) && seen[f.Kind] > 1 {
				t.Errorf("seed %d: %s twice before every kind ran once", seed, f.Kind)
			}
			if f.At < d/20 || f.At+f.Hold > d*80/100 {
				t.Errorf("seed %d: fault %d %s at %s holding %s leaves [5%%, 80%%] of %s", seed, i, f.Kind, f.At, f.Hold, d)
			}
			if i > 0 && f.At <= plan[i-1].At+plan[i-1].Hold {
				t.Errorf("seed %d: fault %d starts before fault %d ends", seed, i, i-1)
			}
			if (f.Kind == FaultClickHouse || f.Kind == FaultDiskFull) != (f.Hold > 0) {
				t.Errorf("seed %d: %s hold %s", seed, f.Kind, f.Hold)
			}
		}
	}
	if plan := schedule(nil, 3, d, rand.New(rand.NewPCG(1, 1))); plan != nil {
		t.Errorf("no kinds: %v", plan)
	}
}

func TestParseStat(t *testing.T) {
	// comm with a space and a parenthesis, as /proc allows.
	line := "4242 (clickhouse-serv) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 30 10 60 0 123 456 789"
	st, ok := parseStat(line)
	if !ok || st.comm != "clickhouse-serv" || st.ppid != 17 || st.cpu != 3800*time.Millisecond {
		t.Errorf("%+v %v", st, ok)
	}
	st, ok = parseStat("1 (a) b) R 9 1 1 0 -1 0 0 0 0 0 7 3 0 0")
	if !ok || st.comm != "a) b" || st.ppid != 9 || st.cpu != 100*time.Millisecond {
		t.Errorf("%+v %v", st, ok)
	}
	if _, ok := parseStat("garbage"); ok {
		t.Error("garbage parsed")
	}
	if got := statusKB("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t1024 kB\n", "VmHWM:"); got != 2<<20 {
		t.Errorf("VmHWM %d", got)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics("# HELP arubug_spool_events x\n# TYPE arubug_spool_events gauge\narubug_spool_events 12\n" +
		"arubug_zendesk_outbox_depth 0\narubug_http_requests_total{code=\"200\"} 5\nweird\n")
	if m["arubug_spool_events"] != 12 || m["arubug_zendesk_outbox_depth"] != 0 || len(m) != 2 {
		t.Errorf("%v", m)
	}
}

func TestReportText(t *testing.T) {
	rep := &Report{RunID: "scn-x", Load: Load{AckedEvents: 10, ErrorsByKind: map[string]int{"http_503": 2, "conn_refused": 1}},
		Faults: []FaultRecord{{Kind: "kill", AtSeconds: 3, Detail: "kill -9"}}}
	var b bytes.Buffer
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "PASS") || !strings.Contains(b.String(), "conn_refused 1, http_503 2") {
		t.Errorf("passing report:\n%s", &b)
	}
	rep.Violations = []string{"stream single: 1 of 10 acknowledged events missing"}
	b.Reset()
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "FAIL: 1 invariant violations") || !strings.Contains(b.String(), "- stream single: 1 of 10") {
		t.Errorf("failing report:\n%s", &b)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Config{ArubugBin: "/nonexistent/arubug", Duration: time.Second, CPUProfile: "x"}.withDefaults()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"at least 10s", "pprof address", "arubug binary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
