package routing

import (
	"reflect"
	"testing"
)

func TestRoutesDescribesTheTreeInEvaluationOrder(t *testing.T) {
	r, err := Parse("rules.yaml", []byte(`
teams:
  - {name: a, zendesk_group: A}
  - {name: b, zendesk_group: B}
fallback_team: a
routes:
  - name: vip
    any: ['usage.events_30d > 1000', 'usage.person.plan = enterprise']
    priority_bump: 1
    tags: [vip]
    cc: [vip@example.com]
    continue: true
  - name: billing
    match: ['path =~ ^/billing']
    team: b
    priority: high
    routes:
      - {name: invoices, match: ['path ~= /billing/invoices/**'], team: a}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Routes()
	want := []RouteInfo{
		{Path: "vip", Any: []string{"usage.events_30d > 1000", "usage.person.plan = enterprise"}, Bump: 1, Tags: []string{"vip"}, CC: []string{"vip@example.com"}, Continue: true},
		{Path: "billing", Match: []string{"path =~ ^/billing"}, Team: "b", Decides: "b", Priority: "high"},
		{Path: "billing/invoices", Depth: 1, Match: []string{"path ~= /billing/invoices/**"}, Team: "a", Decides: "a"},
	}
	for i := range want {
		if want[i].Tags == nil {
			want[i].Tags = got[i].Tags
		}
		if want[i].CC == nil {
			want[i].CC = got[i].CC
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Routes() =\n%+v\nwant\n%+v", got, want)
	}
}
