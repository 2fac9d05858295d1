package zendesk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	zd "github.com/nukosuke/go-zendesk/zendesk"
)

// SetupOptions says what Setup creates in a Zendesk account.
type SetupOptions struct {
	// WebhookURL is where Zendesk posts the deliveries: Arubug's
	// /webhooks/zendesk address as Zendesk reaches it (required).
	WebhookURL string
	// Name is the webhook's name and the prefix of the triggers' titles;
	// Setup finds what it made before by these names. Default "Arubug".
	Name string
	// Tag is the ticket tag that marks Arubug's tickets; the triggers fire
	// only for tickets that carry it. Default "arubug".
	Tag string
	// Groups are the Zendesk groups the routing rules name (names or
	// numeric ids); Setup reports those that do not exist.
	Groups []string
}

// Default names used by Setup.
const (
	DefaultSetupName = "Arubug"
	DefaultTicketTag = "arubug"
)

// What Setup did to one object.
const (
	SetupCreated   = "created"
	SetupUpdated   = "updated"
	SetupUnchanged = "unchanged"
)

// SetupItem is one object Setup manages and what it did to it.
type SetupItem struct {
	Kind   string // "webhook" or "trigger"
	Name   string // the webhook's name or the trigger's title
	ID     string
	Change string // SetupCreated, SetupUpdated or SetupUnchanged
}

// SetupResult reports a Setup run.
type SetupResult struct {
	Webhook  SetupItem
	Triggers []SetupItem
	// Secret is the webhook's signing secret, the zendesk_webhook_secret
	// setting. It prints as <secret>.
	Secret SigningSecret
	// GroupsChecked counts the distinct groups looked up; MissingGroups
	// lists those that do not exist (as given).
	GroupsChecked int
	MissingGroups []string
}

// Changed reports whether the run created or updated anything.
func (r SetupResult) Changed() bool {
	if r.Webhook.Change != SetupUnchanged {
		return true
	}
	for _, t := range r.Triggers {
		if t.Change != SetupUnchanged {
			return true
		}
	}
	return false
}

// SigningSecret is a webhook signing secret. It redacts itself when
// formatted or marshalled; Reveal returns the text.
type SigningSecret string

// String returns "<secret>", or "" for an empty secret.
func (s SigningSecret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString redacts like String.
func (s SigningSecret) GoString() string { return s.String() }

// MarshalText redacts like String.
func (s SigningSecret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret's text.
func (s SigningSecret) Reveal() string { return string(s) }

// Setup makes the Zendesk side of the webhook flow exist, idempotently:
// one webhook named o.Name posting JSON to o.WebhookURL, and three triggers
// that notify it for tickets tagged o.Tag (ticket created, comment added,
// status changed) with the bodies ReportWebhookTemplate,
// CommentWebhookTemplate and StatusWebhookTemplate. Objects that already
// match are left alone, so a second run changes nothing. It also fetches the
// webhook's signing secret and checks that o.Groups exist. Zendesk errors
// are returned wrapped (see Classify); missing groups are not an error but
// are listed in the result.
func Setup(ctx context.Context, c *Client, o SetupOptions) (SetupResult, error) {
	var res SetupResult
	u, err := url.Parse(o.WebhookURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return res, fmt.Errorf("zendesk setup: webhook URL %q must be an http(s) URL like https://arubug.example.com/webhooks/zendesk", o.WebhookURL)
	}
	if o.Name = strings.TrimSpace(o.Name); o.Name == "" {
		o.Name = DefaultSetupName
	}
	if o.Tag = strings.ToLower(strings.TrimSpace(o.Tag)); o.Tag == "" {
		o.Tag = DefaultTicketTag
	}
	if strings.ContainsAny(o.Tag, " \t\n") {
		return res, fmt.Errorf("zendesk setup: tag %q must be one word", o.Tag)
	}

	hook, err := setupWebhook(ctx, c, o)
	if err != nil {
		return res, err
	}
	res.Webhook = hook
	secret, err := c.GetWebhookSigningSecret(ctx, hook.ID)
	if err != nil {
		return res, fmt.Errorf("zendesk setup: reading the webhook's signing secret: %w", err)
	}
	if secret == nil || secret.Secret == "" {
		return res, errors.New("zendesk setup: Zendesk returned an empty signing secret")
	}
	res.Secret = SigningSecret(secret.Secret)

	existing, err := listTriggers(ctx, c)
	if err != nil {
		return res, err
	}
	for _, want := range setupTriggers(o, hook.ID) {
		item, err := upsertTrigger(ctx, c, existing, want)
		if err != nil {
			return res, err
		}
		res.Triggers = append(res.Triggers, item)
	}

	res.GroupsChecked, res.MissingGroups, err = missingGroups(ctx, c, o.Groups)
	return res, err
}

// SetupTriggerTitles returns the titles of the triggers Setup manages for
// the name (DefaultSetupName when empty), in the order Setup makes them.
func SetupTriggerTitles(name string) []string {
	if name = strings.TrimSpace(name); name == "" {
		name = DefaultSetupName
	}
	return []string{name + ": report created", name + ": comment added", name + ": status changed"}
}

// setupTriggers are the triggers Setup wants. The conditions are Zendesk's
// (conditions reference): update_type is Create|Change, current_tags
// includes TAG, comment_is_public is not_relevant ("comment is present,
// public or private") and status changed.
func setupTriggers(o SetupOptions, webhookID string) []zd.Trigger {
	titles := SetupTriggerTitles(o.Name)
	tagged := zd.TriggerCondition{Field: "current_tags", Operator: "includes", Value: o.Tag}
	mk := func(title, tmpl string, conds ...zd.TriggerCondition) zd.Trigger {
		var t zd.Trigger
		t.Title = title
		t.Active = true
		t.Description = "Managed by 'arubug zendesk setup': sends the ticket's comments and status changes to Arubug."
		t.Conditions.All = conds
		t.Conditions.Any = []zd.TriggerCondition{}
		t.Actions = []zd.TriggerAction{{Field: "notification_webhook", Value: []any{webhookID, tmpl}}}
		return t
	}
	return []zd.Trigger{
		mk(titles[0], ReportWebhookTemplate,
			zd.TriggerCondition{Field: "update_type", Operator: "is", Value: "Create"},
			tagged),
		mk(titles[1], CommentWebhookTemplate,
			zd.TriggerCondition{Field: "update_type", Operator: "is", Value: "Change"},
			tagged,
			zd.TriggerCondition{Field: "comment_is_public", Operator: "is", Value: "not_relevant"}),
		mk(titles[2], StatusWebhookTemplate,
			zd.TriggerCondition{Field: "update_type", Operator: "is", Value: "Change"},
			tagged,
			zd.TriggerCondition{Field: "status", Operator: "changed", Value: nil}),
	}
}

// webhookList is a page of GET /webhooks (cursor pagination).
type webhookList struct {
	Webhooks []zd.Webhook `json:"webhooks"`
	Meta     struct {
		HasMore     bool   `json:"has_more"`
		AfterCursor string `json:"after_cursor"`
	} `json:"meta"`
}

const setupMaxPages = 100

func setupWebhook(ctx context.Context, c *Client, o SetupOptions) (SetupItem, error) {
	item := SetupItem{Kind: "webhook", Name: o.Name}
	want := zd.Webhook{
		Name:          o.Name,
		Endpoint:      o.WebhookURL,
		HTTPMethod:    "POST",
		RequestFormat: "json",
		Status:        "active",
		Subscriptions: []string{"conditional_ticket_events"},
		Description:   "Managed by 'arubug zendesk setup'.",
	}
	var found *zd.Webhook
	q := url.Values{"filter[name_contains]": {o.Name}, "page[size]": {"100"}}
	for page := 0; page < setupMaxPages && found == nil; page++ {
		body, err := c.Get(ctx, "/webhooks?"+q.Encode())
		if err != nil {
			return item, fmt.Errorf("zendesk setup: listing webhooks: %w", err)
		}
		var l webhookList
		if err := json.Unmarshal(body, &l); err != nil {
			return item, fmt.Errorf("zendesk setup: listing webhooks: %w", err)
		}
		for i := range l.Webhooks {
			if l.Webhooks[i].Name == o.Name {
				found = &l.Webhooks[i]
				break
			}
		}
		if !l.Meta.HasMore || l.Meta.AfterCursor == "" {
			break
		}
		q.Set("page[after]", l.Meta.AfterCursor)
	}
	if found == nil {
		h, err := c.CreateWebhook(ctx, &want)
		if err != nil {
			return item, fmt.Errorf("zendesk setup: creating webhook %q: %w", o.Name, err)
		}
		if h == nil || h.ID == "" {
			return item, errors.New("zendesk setup: Zendesk returned a webhook without an id")
		}
		item.ID, item.Change = h.ID, SetupCreated
		return item, nil
	}
	item.ID = found.ID
	if found.Endpoint == want.Endpoint && strings.EqualFold(found.HTTPMethod, want.HTTPMethod) &&
		found.RequestFormat == want.RequestFormat && found.Status == want.Status &&
		slices.Contains(found.Subscriptions, "conditional_ticket_events") {
		item.Change = SetupUnchanged
		return item, nil
	}
	if err := c.UpdateWebhook(ctx, found.ID, &want); err != nil {
		return item, fmt.Errorf("zendesk setup: updating webhook %q: %w", o.Name, err)
	}
	item.Change = SetupUpdated
	return item, nil
}

func listTriggers(ctx context.Context, c *Client) ([]zd.Trigger, error) {
	var all []zd.Trigger
	for n := 1; n <= setupMaxPages; n++ {
		ts, page, err := c.GetTriggers(ctx, &zd.TriggerListOptions{PageOptions: zd.PageOptions{PerPage: 100, Page: n}})
		if err != nil {
			return nil, fmt.Errorf("zendesk setup: listing triggers: %w", err)
		}
		all = append(all, ts...)
		if !page.HasNext() {
			break
		}
	}
	return all, nil
}

func upsertTrigger(ctx context.Context, c *Client, existing []zd.Trigger, want zd.Trigger) (SetupItem, error) {
	item := SetupItem{Kind: "trigger", Name: want.Title}
	i := slices.IndexFunc(existing, func(t zd.Trigger) bool { return t.Title == want.Title })
	if i < 0 {
		t, err := c.CreateTrigger(ctx, want)
		if err != nil {
			return item, fmt.Errorf("zendesk setup: creating trigger %q: %w", want.Title, err)
		}
		item.ID, item.Change = strconv.FormatInt(t.ID, 10), SetupCreated
		return item, nil
	}
	have := existing[i]
	item.ID = strconv.FormatInt(have.ID, 10)
	if have.Active && sameTrigger(have, want) {
		item.Change = SetupUnchanged
		return item, nil
	}
	if _, err := c.UpdateTrigger(ctx, have.ID, want); err != nil {
		return item, fmt.Errorf("zendesk setup: updating trigger %q: %w", want.Title, err)
	}
	item.Change = SetupUpdated
	return item, nil
}

// sameTrigger compares what Setup manages: conditions and actions, with
// values compared as text (Zendesk may return null as "" and ids as numbers).
func sameTrigger(a, b zd.Trigger) bool {
	conds := func(cs []zd.TriggerCondition) []string {
		out := make([]string, 0, len(cs))
		for _, c := range cs {
			out = append(out, c.Field+"\x00"+c.Operator+"\x00"+valueText(c.Value))
		}
		return out
	}
	acts := func(as []zd.TriggerAction) []string {
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, a.Field+"\x00"+valueText(a.Value))
		}
		return out
	}
	return slices.Equal(conds(a.Conditions.All), conds(b.Conditions.All)) &&
		slices.Equal(conds(a.Conditions.Any), conds(b.Conditions.Any)) &&
		slices.Equal(acts(a.Actions), acts(b.Actions))
}

func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = valueText(e)
		}
		return strings.Join(parts, "\x01")
	case []string:
		return strings.Join(x, "\x01")
	}
	return fmt.Sprint(v)
}

// missingGroups looks up every distinct group (by id when numeric, else by
// name, case-insensitively) and returns those that do not exist.
func missingGroups(ctx context.Context, c *Client, groups []string) (int, []string, error) {
	var want []string
	for _, g := range groups {
		if g = strings.TrimSpace(g); g != "" && !slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, g) }) {
			want = append(want, g)
		}
	}
	if len(want) == 0 {
		return 0, nil, nil
	}
	var all []zd.Group
	for n := 1; n <= setupMaxPages; n++ {
		gs, page, err := c.GetGroups(ctx, &zd.GroupListOptions{PageOptions: zd.PageOptions{PerPage: 100, Page: n}})
		if err != nil {
			return 0, nil, fmt.Errorf("zendesk setup: listing groups: %w", err)
		}
		all = append(all, gs...)
		if !page.HasNext() {
			break
		}
	}
	var missing []string
	for _, g := range want {
		id, numErr := strconv.ParseInt(g, 10, 64)
		ok := slices.ContainsFunc(all, func(z zd.Group) bool {
			return !z.Deleted && ((numErr == nil && z.ID == id) || strings.EqualFold(strings.TrimSpace(z.Name), g))
		})
		if !ok {
			missing = append(missing, g)
		}
	}
	return len(want), missing, nil
}
