// Builds the `$bug_report` event exactly as the collector reads it.
import { cap, redactUrl } from './redact';
import type { ConsoleEntry, NetworkEntry } from './capture';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const APP_METADATA_MAX = 10_000; // bytes of JSON

export interface FormValues {
  description: string;
  productArea?: string;
  severity?: string;
  email?: string;
  name?: string;
  honeypot?: string;
  screenshot?: string;
}

export interface PageContext {
  $current_url?: string;
  $pathname?: string;
  $host?: string;
  $referrer?: string;
  $viewport_width?: number;
  $viewport_height?: number;
  $screen_width?: number;
  $screen_height?: number;
  $browser_language?: string;
  $timezone?: string;
  $raw_user_agent?: string;
  $session_id?: string;
  $window_id?: string;
  $active_feature_flags?: string[];
  [k: string]: unknown;
}

export interface BugReportEvent {
  api_key: string;
  event: '$bug_report';
  distinct_id: string;
  uuid: string;
  timestamp: string;
  properties: Record<string, unknown>;
}

/** Cap app metadata at APP_METADATA_MAX bytes of JSON; anything bigger or unserialisable is replaced by a marker. */
export function capMetadata(md: unknown): unknown {
  if (md === undefined) return undefined;
  try {
    const s = JSON.stringify(md);
    if (s === undefined) return undefined;
    if (s.length <= APP_METADATA_MAX) return JSON.parse(s);
    return { $truncated: true, $size: s.length };
  } catch {
    return { $unserialisable: true };
  }
}

/**
 * withoutScreenshot returns a serialised event without its $screenshot, for
 * places with a tight size limit (a beacon, the localStorage queue); the
 * body is returned unchanged when it has none or is not an event.
 */
export function withoutScreenshot(body: string): string {
  try {
    const ev = JSON.parse(body);
    if (!ev || !ev.properties || !('$screenshot' in ev.properties)) return body;
    delete ev.properties.$screenshot;
    return JSON.stringify(ev);
  } catch {
    return body;
  }
}

export function buildEvent(args: {
  token: string;
  distinctId: string;
  uuid: string;
  now: Date;
  form: FormValues;
  context: PageContext;
  console: ConsoleEntry[];
  network: NetworkEntry[];
  openedAt: number; // ms timestamp when the dialog was opened
  submittedAt: number;
  appMetadata?: unknown;
}): BugReportEvent {
  const f = args.form;
  const sev = SEVERITIES.includes(f.severity as Severity) ? f.severity : 'medium';
  const props: Record<string, unknown> = {
    $description: cap(f.description, 10_000),
    $product_area: cap(f.productArea || 'not-sure', 200),
    $severity: sev,
    $hp: cap(f.honeypot || '', 200),
    $time_to_submit_ms: Math.max(0, Math.round(args.submittedAt - args.openedAt)),
    $console: args.console.slice(-50),
    $network: args.network.slice(-20),
  };
  if (f.email) props.$email = cap(f.email.trim(), 320);
  if (f.name) props.$name = cap(f.name.trim(), 200);
  if (f.screenshot) props.$screenshot = f.screenshot;
  for (const k in args.context) {
    const v = args.context[k];
    if (v === undefined || v === null || v === '') continue;
    props[k] = typeof v === 'string' ? (k === '$current_url' || k === '$referrer' ? redactUrl(v) : cap(v)) : v;
  }
  const md = capMetadata(args.appMetadata);
  if (md !== undefined) props.$app_metadata = md;
  props.$lib = 'arubug-widget';
  return {
    api_key: args.token,
    event: '$bug_report',
    distinct_id: cap(args.distinctId, 200),
    uuid: args.uuid,
    timestamp: args.now.toISOString(),
    properties: props,
  };
}
