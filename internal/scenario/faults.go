package scenario

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault kinds accepted by ParseFaults.
const (
	FaultKill        = "kill"         // kill -9 of arubug at a random moment, then a restart on the same data dir
	FaultClickHouse  = "clickhouse"   // ClickHouse stopped for a while, then started again
	FaultZendesk5xx  = "zendesk-5xx"  // a burst of 500/503 answers from the Zendesk simulator
	FaultZendesk429  = "zendesk-429"  // a storm of 429 + Retry-After answers
	FaultZendeskDrop = "zendesk-drop" // ticket creates and comments committed, then the connection dropped
	FaultDiskFull    = "disk-full"    // arubug restarted with a tiny spool_max_bytes for a while: capture answers 503
)

// AllFaults lists every fault kind, in the order "all" expands to.
var AllFaults = []string{FaultKill, FaultClickHouse, FaultZendesk5xx, FaultZendesk429, FaultZendeskDrop, FaultDiskFull}

// ParseFaults parses a comma-separated list of fault kinds; "all" means
// AllFaults, "" or "none" none. Unknown kinds are an error naming them.
func ParseFaults(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out, bad []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case k == "all":
			for _, a := range AllFaults {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		case slices.Contains(AllFaults, k):
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		default:
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("unknown fault kinds %s (want %s or all)", strings.Join(bad, ", "), strings.Join(AllFaults, ", "))
	}
	return out, nil
}

// plannedFault is one fault of the schedule.
type plannedFault struct {
	Kind string        `json:"kind"`
	At   time.Duration `json:"at_ns"` // from the start of the load
	// Hold is how long the fault lasts (ClickHouse down, small spool); 0
	// for instantaneous faults (kill, scripted Zendesk answers).
	Hold time.Duration `json:"hold_ns"`
}

// schedule spreads count faults over the load phase: kinds in a shuffled
// round-robin (every kind once before any twice), each at a random moment
// of its own slot within [5 %, 80 %] of d, so that every fault, and the
// restarts it causes, ends while load still runs and the system has the
// rest of the run plus the drain to recover.
func schedule(kinds []string, count int, d time.Duration, rng *rand.Rand) []plannedFault {
	if len(kinds) == 0 || count <= 0 {
		return nil
	}
	order := slices.Clone(kinds)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	start, span := d/20, d*75/100
	slot := span / time.Duration(count)
	hold := min(max(slot/2, time.Second), 10*time.Second)
	out := make([]plannedFault, 0, count)
	for i := range count {
		k := order[i%len(order)]
		// The first 40 % of a slot, so the fault's hold and recovery fit.
		at := start + time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot)*2/5+1))
		pf := plannedFault{Kind: k, At: at}
		switch k {
		case FaultClickHouse, FaultDiskFull:
			pf.Hold = hold
		}
		out = append(out, pf)
	}
	return out
}
