// Package enrich adds to a bug report what the report itself does not say:
// the reporter's browser and device from the user agent, a link to the
// session replay, and the reporter's recent product usage read from the
// events table in ClickHouse.
//
// Enrichment is best effort. Its ClickHouse queries are bounded in time and
// in rows, so a slow or unavailable ClickHouse costs a report its usage
// section, never its delivery.
package enrich
