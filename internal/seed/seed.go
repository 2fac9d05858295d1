// Package seed writes a realistic synthetic history into ClickHouse: people
// using a product, their bug reports routed by the real rules, the tickets
// those became, and the conversations on them. Demos and benchmarks use it
// so dashboards have something to show. The same seed writes the same ids,
// so running it twice collapses instead of doubling.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/enrich"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/triage"
	"github.com/arubug/arubug/internal/zendesk"
)

// Store is where the history goes.
type Store interface {
	WriteEvents(ctx context.Context, events []bugreport.Event) error
	SaveReports(ctx context.Context, rs []*bugreport.Report, source string) error
	SaveTicketLinks(ctx context.Context, links []*bugreport.TicketLink) error
	SaveTicketStatuses(ctx context.Context, ss []bugreport.TicketStatus) error
}

// Options sizes the history.
type Options struct {
	Project string // project name
	Token   string // its capture token, for replay links
	// ReplayHost builds replay links; "" leaves them out.
	ReplayHost string
	Reports    int // bug reports (default 100)
	Days       int // spread over this many days before Now (default 30)
	// EventsPerPerson is the ordinary events per reporter (default 40).
	EventsPerPerson int
	Seed            uint64
	Now             time.Time
	Rules           *routing.Rules
}

// Summary counts what was written.
type Summary struct {
	Events, Reports, Tickets, Messages int
}

func (s Summary) String() string {
	return fmt.Sprintf("%d events, %d reports, %d tickets, %d messages", s.Events, s.Reports, s.Tickets, s.Messages)
}

type person struct {
	id, email, name, company, plan, ua string
}

var (
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Radia", "Alan", "Hedy"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Dijkstra", "Perlman", "Kay", "Lamarr"}
	companies  = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises", "Wonka"}
	plans      = []string{"free", "free", "pro", "pro", "enterprise"}
	agents     = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	}
	problems = []string{
		"The page stays blank after I click %s",
		"%s shows an error: \"Something went wrong\"",
		"Numbers in %s do not match the export",
		"%s is very slow, it takes more than a minute to load",
		"I cannot save changes in %s",
		"The button in %s does nothing",
	}
	errorsSeen = []string{
		"TypeError: Cannot read properties of undefined (reading 'map')",
		"ChunkLoadError: Loading chunk 42 failed",
		"Error: Request failed with status code 500",
		"RangeError: Maximum call stack size exceeded",
	}
)

// Run writes the history and reports progress after each batch.
func Run(ctx context.Context, st Store, o Options, progress func(Summary)) (Summary, error) {
	if o.Rules == nil {
		return Summary{}, fmt.Errorf("seed: routing rules are required")
	}
	if o.Reports <= 0 {
		o.Reports = 100
	}
	if o.Days <= 0 {
		o.Days = 30
	}
	if o.EventsPerPerson <= 0 {
		o.EventsPerPerson = 40
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if progress == nil {
		progress = func(Summary) {}
	}
	g := &gen{o: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), areas: o.Rules.ProductAreas()}
	var sum Summary

	people := make([]person, max(5, o.Reports/3))
	for i := range people {
		c := companies[g.rnd.IntN(len(companies))]
		first, last := firstNames[g.rnd.IntN(len(firstNames))], lastNames[g.rnd.IntN(len(lastNames))]
		people[i] = person{
			id: fmt.Sprintf("seed-user-%d", i), name: first + " " + last, company: c, plan: plans[g.rnd.IntN(len(plans))],
			email: fmt.Sprintf("%s.%s%d@%s.example", strings.ToLower(first), strings.ToLower(last), i, strings.ToLower(strings.Fields(c)[0])),
			ua:    agents[g.rnd.IntN(len(agents))],
		}
	}
	var (
		batch    []bugreport.Event
		reports  []*bugreport.Report
		links    []*bugreport.TicketLink
		statuses []bugreport.TicketStatus
	)
	// flush writes what has piled up: events in inserts of up to 20 000,
	// reports with their links and statuses in inserts of up to 5 000.
	flush := func(force bool) error {
		if len(batch) > 0 && (force || len(batch) >= 20000) {
			if err := st.WriteEvents(ctx, batch); err != nil {
				return err
			}
			sum.Events += len(batch)
			batch = batch[:0]
			progress(sum)
		}
		if len(reports) > 0 && (force || len(reports) >= 5000) {
			if err := st.SaveReports(ctx, reports, "rules"); err != nil {
				return err
			}
			if err := st.SaveTicketLinks(ctx, links); err != nil {
				return err
			}
			if err := st.SaveTicketStatuses(ctx, statuses); err != nil {
				return err
			}
			sum.Reports += len(reports)
			sum.Tickets += len(links)
			reports, links, statuses = reports[:0], links[:0], statuses[:0]
			progress(sum)
		}
		return nil
	}
	for i, p := range people {
		batch = append(batch, g.history(i, p)...)
		if err := flush(false); err != nil {
			return sum, err
		}
	}

	var first []*bugreport.Report // earlier reports that later ones repeat
	for i := range o.Reports {
		p := people[g.rnd.IntN(len(people))]
		var like *bugreport.Report
		if len(first) > 0 && g.rnd.Float64() < 0.2 {
			like = first[g.rnd.IntN(len(first))]
		}
		ev, r := g.report(i, p, like)
		batch = append(batch, ev)
		reports = append(reports, r)
		if like == nil && len(first) < 50 {
			first = append(first, r)
		}
		if !r.Spam {
			msgs, link, status, statusAt := g.ticket(i, r, p)
			links = append(links, link)
			statuses = append(statuses, bugreport.TicketStatus{Link: link, Status: status, At: statusAt})
			for _, m := range msgs {
				batch = append(batch, zendesk.MessageEvent(o.Project, m, m.At))
			}
			sum.Messages += len(msgs)
		}
		if err := flush(false); err != nil {
			return sum, err
		}
	}
	if err := flush(true); err != nil {
		return sum, err
	}
	return sum, nil
}

type gen struct {
	o     Options
	rnd   *rand.Rand
	areas []routing.ProductArea
}

func (g *gen) id(kind string, i int) bugreport.UUID {
	return bugreport.UUID(uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "arubug-seed:%d:%s:%d", g.o.Seed, kind, i)))
}

// ago is a time in the seeded window, more often recent.
func (g *gen) ago() time.Time {
	f := math.Pow(g.rnd.Float64(), 1.6)
	return g.o.Now.Add(-time.Duration(f * float64(g.o.Days) * 24 * float64(time.Hour))).UTC().Truncate(time.Second)
}

func (g *gen) path(area string) string {
	return "/" + area + []string{"", "/overview", "/settings", "/42", "/new"}[g.rnd.IntN(5)]
}

// history is one person's ordinary events: an identify with their person
// properties, page views and clicks, and now and then an exception.
func (g *gen) history(n int, p person) []bugreport.Event {
	out := make([]bugreport.Event, 0, g.o.EventsPerPerson+1)
	set, _ := json.Marshal(map[string]string{"email": p.email, "name": p.name, "company": p.company, "plan": p.plan})
	start := g.o.Now.Add(-time.Duration(g.o.Days) * 24 * time.Hour).UTC()
	out = append(out, bugreport.Event{UUID: g.id("identify", n), Project: g.o.Project, Event: "$identify", DistinctID: p.id,
		Timestamp: start, CreatedAt: start, Properties: `{"$lib":"web"}`, Set: string(set)})
	for j := range g.o.EventsPerPerson {
		at := g.ago()
		name, props := "$pageview", map[string]any{}
		area := "home"
		if len(g.areas) > 0 {
			area = g.areas[g.rnd.IntN(len(g.areas))].ID
		}
		path := g.path(area)
		switch x := g.rnd.IntN(20); {
		case x == 0:
			name = "$exception"
			props["$exception_type"] = "TypeError"
			props["$exception_message"] = errorsSeen[g.rnd.IntN(len(errorsSeen))]
		case x < 6:
			name = "button_clicked"
		}
		props["$pathname"], props["$current_url"], props["$lib"] = path, "https://app.example.com"+path, "web"
		b, _ := json.Marshal(props)
		out = append(out, bugreport.Event{UUID: g.id(fmt.Sprintf("event-%d", n), j), Project: g.o.Project, Event: name, DistinctID: p.id,
			Timestamp: at, CreatedAt: at, Properties: string(b), Pathname: path, CurrentURL: "https://app.example.com" + path, Lib: "web"})
	}
	return out
}

// report builds the i-th report's event and routed report; like, when not
// nil, is an earlier report this one repeats (a similar report).
func (g *gen) report(i int, p person, like *bugreport.Report) (bugreport.Event, *bugreport.Report) {
	at := g.ago()
	area, path, desc := "", "/", ""
	if like != nil {
		area, path, desc = like.ProductArea, like.Path, like.Description
	} else {
		if len(g.areas) > 0 && g.rnd.IntN(6) > 0 {
			a := g.areas[g.rnd.IntN(len(g.areas))]
			area = a.ID
			path = g.path(a.ID)
			desc = fmt.Sprintf(problems[g.rnd.IntN(len(problems))], a.Label)
		} else {
			path = g.path("home")
			desc = fmt.Sprintf(problems[g.rnd.IntN(len(problems))], "the home page")
		}
		desc += ".\nIt started " + []string{"today", "yesterday", "after the last update", "this week"}[g.rnd.IntN(4)] + "."
	}
	sev := []string{"low", "medium", "medium", "high", "critical", ""}[g.rnd.IntN(6)]
	session := g.id("session", i)
	props := map[string]any{
		triage.PropDescription:  desc,
		triage.PropEmail:        p.email,
		triage.PropName:         p.name,
		triage.PropUserAgent:    p.ua,
		triage.PropTimeToSubmit: 5000 + g.rnd.IntN(60000),
		"$pathname":             path,
		"$current_url":          "https://app.example.com" + path,
		"$session_id":           session.String(),
	}
	if area != "" {
		props[triage.PropProductArea] = area
	}
	if sev != "" {
		props[triage.PropSeverity] = sev
	}
	if g.rnd.IntN(2) == 0 {
		props[triage.PropConsole] = []map[string]any{{"level": "error", "message": errorsSeen[g.rnd.IntN(len(errorsSeen))], "at": at.Add(-time.Minute).Format(time.RFC3339)}}
	}
	if g.rnd.IntN(3) == 0 {
		props[triage.PropNetwork] = []map[string]any{{"method": "GET", "url": "https://app.example.com/api" + path, "status": []int{500, 502, 404, 0}[g.rnd.IntN(4)], "duration_ms": 100 + g.rnd.IntN(3000), "at": at.Add(-time.Minute).Format(time.RFC3339)}}
	}
	b, _ := json.Marshal(props)
	ev := bugreport.Event{UUID: g.id("report", i), Project: g.o.Project, Event: bugreport.EventBugReport, DistinctID: p.id,
		Timestamp: at, CreatedAt: at, Properties: string(b), SessionID: session.String(), Pathname: path, CurrentURL: "https://app.example.com" + path, Lib: "web"}
	r := triage.BuildReport(ev)
	c := enrich.ParseUserAgent(r.UserAgent)
	r.Browser, r.BrowserVersion, r.OS, r.OSVersion, r.Device = c.Browser, c.BrowserVersion, c.OS, c.OSVersion, c.Device
	if g.o.ReplayHost != "" {
		r.ReplayURL = enrich.ReplayURL(enrich.DefaultReplayTemplate, g.o.ReplayHost, g.o.Token, r.SessionID, int64(60+g.rnd.IntN(1800)))
	}
	r.Usage = &bugreport.Usage{
		Events30d: uint64(20 + g.rnd.IntN(3000)), ActiveDays30d: uint64(1 + g.rnd.IntN(30)), Sessions30d: uint64(1 + g.rnd.IntN(90)),
		FirstSeen: at.Add(-time.Duration(g.rnd.IntN(300)) * 24 * time.Hour), LastSeen: at,
		TopEvents: []bugreport.Count{{Name: "$pageview", Count: uint64(10 + g.rnd.IntN(900))}, {Name: "button_clicked", Count: uint64(g.rnd.IntN(300))}},
		TopPages:  []bugreport.Count{{Name: path, Count: uint64(1 + g.rnd.IntN(200))}},
		Person:    map[string]string{"email": p.email, "company": p.company, "plan": p.plan},
	}
	if g.rnd.IntN(3) == 0 {
		r.Usage.RecentExceptions = []bugreport.Exception{{Type: "TypeError", Message: errorsSeen[g.rnd.IntN(len(errorsSeen))], At: at.Add(-5 * time.Minute)}}
	}
	r.Fingerprint = triage.Fingerprint(r)
	r.SimilarCount = 1
	r.Route = g.o.Rules.Route(r)
	r.RouteSource = "rules"
	return ev, r
}

// ticket gives a report its ticket, its status and a conversation: most
// get an agent's answer within hours, some a reply from the reporter, and
// older ones are mostly solved.
func (g *gen) ticket(i int, r *bugreport.Report, p person) ([]bugreport.Message, *bugreport.TicketLink, string, time.Time) {
	ticket := int64(100000 + i)
	link := &bugreport.TicketLink{ReportID: r.ID, Project: r.Project, ReportedAt: r.ReportedAt, TicketID: ticket, Team: r.Route.Team,
		State: bugreport.SyncSeeded, Attempts: 1, UpdatedAt: r.ReportedAt.Add(time.Second)}
	requester, agent := int64(500000+i), int64(900001+g.rnd.IntN(5))
	at := r.ReportedAt.Add(time.Second)
	msgs := []bugreport.Message{{Kind: bugreport.MessageReport, Public: true, AuthorID: requester, AuthorName: p.name, Via: "api", Body: r.Description, At: at},
		{Kind: bugreport.MessageNote, AuthorID: agent, AuthorName: "Arubug", Via: "api", Body: zendesk.NoteMarker(r.ID) + "\n(context for the agent)", At: at.Add(time.Second)}}
	status, statusAt := "new", at
	answered := g.rnd.Float64() < 0.8
	latest := g.o.Now.UTC()
	if answered {
		delay := time.Duration(math.Exp(g.rnd.NormFloat64()*1.2+8.5)) * time.Second // median ≈ 80 min
		reply := at.Add(delay)
		if reply.Before(latest) {
			msgs = append(msgs, bugreport.Message{Kind: bugreport.MessageAgentReply, Public: true, AuthorID: agent, AuthorName: "Support agent", Via: "web",
				Body: "Thanks for the report! We are looking into it.", At: reply})
			status, statusAt = "open", reply
			if back := reply.Add(time.Duration(1+g.rnd.IntN(600)) * time.Minute); g.rnd.IntN(5) < 2 && back.Before(latest) {
				msgs = append(msgs, bugreport.Message{Kind: bugreport.MessageRequesterReply, Public: true, AuthorID: requester, AuthorName: p.name, Via: "email",
					Body: "It happens again today, on " + r.Browser + ".", At: back})
				statusAt = back
			}
			if solved := statusAt.Add(time.Duration(1+g.rnd.IntN(72)) * time.Hour); solved.Before(latest) && g.rnd.IntN(10) < 7 {
				status, statusAt = "solved", solved
			}
		}
	}
	for j := range msgs {
		msgs[j].ID = zendesk.CommentEventID(ticket, int64(j+1))
		msgs[j].ReportID, msgs[j].TicketID, msgs[j].CommentID = r.ID, ticket, int64(j+1)
	}
	msgs = append(msgs, bugreport.Message{ID: zendesk.StatusEventID(ticket, status, statusAt), ReportID: r.ID, TicketID: ticket, Kind: "status", Status: status, At: statusAt})
	return msgs, link, status, statusAt
}
