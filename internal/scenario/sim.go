package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

// simClient drives the Zendesk simulator's /_sim control API: scripted
// faults, agent replies and the ticket dump the invariants are checked on.
type simClient struct {
	base string
	hc   *http.Client
}

func newSimClient(base string) *simClient {
	return &simClient{base: base, hc: &http.Client{Timeout: 10 * time.Second}}
}

func (c *simClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (c *simClient) addFault(ctx context.Context, f zendesktest.FaultSpec) error {
	return c.do(ctx, http.MethodPost, "/_sim/faults", f, nil)
}

func (c *simClient) clearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/_sim/faults", nil, nil)
}

// tickets lists the tickets with an id above sinceID, with or without
// their comments.
func (c *simClient) tickets(ctx context.Context, sinceID int64, comments bool) ([]zendesktest.DumpedTicket, error) {
	var out struct {
		Tickets []zendesktest.DumpedTicket `json:"tickets"`
	}
	path := "/_sim/tickets.json?comments=" + strconv.FormatBool(comments)
	if sinceID > 0 {
		path += "&since_id=" + strconv.FormatInt(sinceID, 10)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Tickets, err
}

// agentReply adds an agent's comment to a ticket as if written in Zendesk;
// the simulator's trigger then posts it to arubug's webhook.
func (c *simClient) agentReply(ctx context.Context, ticketID int64, body string, public bool) (zendesktest.Comment, error) {
	var out struct {
		Comment zendesktest.Comment `json:"comment"`
	}
	err := c.do(ctx, http.MethodPost, "/_sim/tickets/"+strconv.FormatInt(ticketID, 10)+"/agent_reply",
		map[string]any{"body": body, "public": public}, &out)
	return out.Comment, err
}
