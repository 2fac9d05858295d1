// Ties capture, context, payload, delivery, queue and the widget together.
import { installCapture, Recorder } from './capture';
import { collectContext, posthogEmail, safe, PostHogLike } from './context';
import { buildEvent, BugReportEvent, FormValues, withoutScreenshot } from './payload';
import { fetchTransport, sendWithRetry, SendResult, Transport } from './deliver';
import { Queue } from './queue';
import { resolveStrings, Strings } from './strings';
import { uuidv4 } from './uuid';
import { Widget } from './widget';

export interface ArubugOptions {
  token: string;
  host: string;
  buttonText?: string;
  position?: 'bottom-right' | 'bottom-left' | 'top-right' | 'top-left';
  color?: string;
  textColor?: string;
  zIndex?: number;
  showLauncher?: boolean;
  /** Keyboard shortcut, e.g. "alt+shift+b" (default); false disables it. */
  shortcut?: string | false;
  productAreas?: boolean;
  severity?: boolean;
  requireEmail?: boolean;
  email?: string;
  name?: string;
  locale?: string;
  strings?: Partial<Strings>;
  nonce?: string;
  getMetadata?: () => unknown;
  /** 'collector' (default): POST to {host}/e/ ourselves. 'posthog': posthog.capture(…, {uuid}). */
  delivery?: 'collector' | 'posthog';
  posthog?: PostHogLike;
  /** Offer a screenshot of the page (form fields masked); off by default. */
  screenshot?: boolean;
  /** Base URL of the widget's files, where the lazy screenshot.js is; default {host}/static/arubug/latest/. */
  assetsUrl?: string;
}

/** What the lazily loaded screenshot.js exports. */
export interface ScreenshotModule {
  capture(w?: Window): Promise<string>;
}

/** Beacons are refused past 64 KiB: a bigger report goes without its screenshot. */
export const BEACON_MAX = 60_000;
/** A report bigger than this is kept in localStorage without its screenshot. */
export const PERSIST_MAX = 800_000;

export interface Arubug {
  open(): void;
  close(): void;
  destroy(): void;
  /** Send a report without the UI; resolves with the uuid and the result. */
  report(f: FormValues): Promise<{ uuid: string; result: SendResult }>;
}

function storage(w: any, kind: 'localStorage' | 'sessionStorage'): Storage | null {
  return safe(() => w[kind]) || null;
}

function persistentId(st: Storage | null, key: string): string {
  let v = safe(() => st && st.getItem(key));
  if (!v) {
    v = uuidv4();
    safe(() => st && st.setItem(key, v!));
  }
  return v;
}

export function matchShortcut(spec: string, e: KeyboardEvent): boolean {
  const parts = spec.toLowerCase().split('+');
  const key = parts.pop() || '';
  const want = (m: string) => parts.includes(m);
  if (want('ctrl') !== e.ctrlKey || want('shift') !== e.shiftKey || want('alt') !== e.altKey || want('meta') !== e.metaKey) return false;
  return e.code === 'Key' + key.toUpperCase() || e.code === 'Digit' + key || (e.key || '').toLowerCase() === key;
}

export function createArubug(o: ArubugOptions): Arubug {
  const w: any = window;
  const host = String(o.host || '').replace(/\/+$/, '');
  const url = host + '/e/';
  const rec: Recorder = installCapture(w);
  if (host) rec.ignore.push(url, host + '/api/v1/product-areas'); // our own requests
  const ls = storage(w, 'localStorage');
  const ss = storage(w, 'sessionStorage');
  const queue = new Queue(ls);
  const ph = o.posthog;
  const ids = { sessionId: persistentId(ss, 'arubug:session_id'), windowId: uuidv4() };
  const transport: Transport = fetchTransport(w.fetch.bind(w));
  const inFlight = new Map<string, string>();
  const isOnline = () => safe(() => w.navigator.onLine) !== false;
  const deliver = (u: string, body: string) => sendWithRetry(transport, u, body, { isOnline });
  const strings = resolveStrings(o.locale, { ...(o.buttonText ? { launcher: o.buttonText } : {}), ...o.strings });

  let areas: Promise<{ id: string; label: string }[]> | undefined;
  const loadAreas = () =>
    (areas ||= w
      .fetch(host + '/api/v1/product-areas', { credentials: 'omit' })
      .then((r: Response) => (r.ok ? r.json() : { product_areas: [] }))
      .then((j: any) =>
        (Array.isArray(j && j.product_areas) ? j.product_areas : []).filter((a: any) => a && typeof a.id === 'string' && typeof a.label === 'string'),
      )
      .catch(() => []));

  function makeEvent(f: FormValues, openedAt: number, uuid: string): BugReportEvent {
    const md = o.getMetadata ? safe(o.getMetadata) : undefined;
    return buildEvent({
      token: o.token,
      distinctId: (ph && safe(() => ph.get_distinct_id())) || persistentId(ls, 'arubug:distinct_id'),
      uuid,
      now: new Date(),
      form: f,
      context: collectContext(w, ph, ids),
      console: rec.console.toArray(),
      network: rec.network.toArray(),
      openedAt,
      submittedAt: Date.now(),
      appMetadata: md,
    });
  }

  function submit(f: FormValues, openedAt: number, uuid = uuidv4()) {
    const ev = makeEvent(f, openedAt, uuid);
    if (o.delivery === 'posthog' && ph && typeof ph.capture === 'function') {
      // posthog-js only queues: there is no server answer to show.
      const r = safe(() => ph.capture('$bug_report', ev.properties, { uuid, send_instantly: true }));
      return { uuid, done: Promise.resolve<SendResult>(r === undefined ? { ok: false, permanent: false, status: 0 } : { ok: true, status: 0 }) };
    }
    const body = JSON.stringify(ev);
    queue.add({ uuid, url, body: body.length > PERSIST_MAX ? withoutScreenshot(body) : body }); // write-ahead: survives a crash/close
    inFlight.set(uuid, body);
    const done = deliver(url, body).then((r) => {
      inFlight.delete(uuid);
      if (r.ok || r.permanent) queue.remove(uuid);
      return r;
    });
    return { uuid, done };
  }

  // The widget shows an error for a report that a later flush delivers: tell it.
  const flush = () =>
    queue.flush(
      (p) =>
        deliver(p.url, p.body).then((r) => {
          if (r.ok) widget && widget.delivered(p.uuid);
          return r;
        }),
      (id) => inFlight.has(id),
    );
  const onOnline = () => flush();
  // On page hide, whatever is still pending (in flight, waiting for a retry,
  // or queued) goes out once more by beacon; the shared uuid makes a second
  // copy harmless. Once per report per page.
  const beaconed = new Set<string>();
  const onHide = () => {
    const nav = w.navigator;
    if (!nav || typeof nav.sendBeacon !== 'function' || !isOnline()) return;
    const pending = new Map<string, { url: string; body: string }>();
    queue.list().forEach((p) => pending.set(p.uuid, p));
    inFlight.forEach((body, id) => pending.set(id, { url, body }));
    pending.forEach((p, id) => {
      if (beaconed.has(id)) return;
      const body = p.body.length > BEACON_MAX ? withoutScreenshot(p.body) : p.body;
      if (safe(() => nav.sendBeacon(p.url, new Blob([body], { type: 'text/plain' })))) beaconed.add(id);
    });
  };
  const onVisibility = () => {
    if (safe(() => w.document.visibilityState) === 'hidden') onHide();
  };
  w.addEventListener('online', onOnline);
  w.addEventListener('pagehide', onHide);
  w.document.addEventListener('visibilitychange', onVisibility);

  // The screenshot code is a separate file, fetched the first time it is needed.
  const assets = (o.assetsUrl || host + '/static/arubug/latest/').replace(/\/?$/, '/');
  let shot: Promise<ScreenshotModule> | undefined;
  const takeScreenshot = () => {
    const m = (shot ||= import(assets + 'screenshot.js') as Promise<ScreenshotModule>);
    m.catch(() => (shot = undefined)); // a failed load can be tried again
    return m.then((mod) => mod.capture(w));
  };

  let widget: Widget | undefined;
  const mount = () => {
    widget = new Widget({
      strings,
      position: o.position || 'bottom-right',
      color: o.color,
      textColor: o.textColor,
      zIndex: o.zIndex,
      nonce: o.nonce,
      showLauncher: o.showLauncher !== false,
      productAreas: o.productAreas !== false,
      severity: o.severity !== false,
      requireEmail: o.requireEmail !== false,
      email: o.email || posthogEmail(ph),
      name: o.name,
      loadAreas,
      submit,
      screenshot: o.screenshot ? takeScreenshot : undefined,
    });
    flush();
  };
  if (w.document.body) mount();
  else w.addEventListener('DOMContentLoaded', mount);

  const shortcut = o.shortcut === undefined ? 'alt+shift+b' : o.shortcut;
  const onKey = (e: KeyboardEvent) => {
    if (shortcut && matchShortcut(shortcut, e)) {
      e.preventDefault();
      widget && (widget.isOpen ? widget.close() : widget.open());
    }
  };
  w.addEventListener('keydown', onKey);

  return {
    open: () => widget && widget.open(),
    close: () => widget && widget.close(),
    destroy() {
      w.removeEventListener('online', onOnline);
      w.removeEventListener('pagehide', onHide);
      w.document.removeEventListener('visibilitychange', onVisibility);
      w.removeEventListener('keydown', onKey);
      widget && widget.destroy();
    },
    report(f) {
      const j = submit(f, Date.now());
      return j.done.then((result) => ({ uuid: j.uuid, result }));
    },
  };
}
