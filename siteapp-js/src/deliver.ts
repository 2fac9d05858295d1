// Delivery with retries: exponential backoff, Retry-After honoured.
export type SendResult =
  | { ok: true; status: number }
  | { ok: false; permanent: true; status: number; message: string }
  | { ok: false; permanent: false; status: number; offline?: boolean; retryAfterMs?: number };

export interface Transport {
  (url: string, body: string): Promise<{ status: number; retryAfter?: string | null; text?: string }>;
}

export const BASE_DELAY_MS = 1000;
export const MAX_DELAY_MS = 30_000;
export const MAX_RETRY_AFTER_MS = 120_000;

/** Milliseconds from a Retry-After header (seconds or an HTTP date); undefined when absent/invalid. */
export function parseRetryAfter(v: string | null | undefined, now = Date.now()): number | undefined {
  if (v == null || v === '') return undefined;
  const s = Number(v);
  if (!isNaN(s)) return Math.min(Math.max(0, s * 1000), MAX_RETRY_AFTER_MS);
  const d = Date.parse(v);
  return isNaN(d) ? undefined : Math.min(Math.max(0, d - now), MAX_RETRY_AFTER_MS);
}

export function backoff(attempt: number): number {
  return Math.min(BASE_DELAY_MS * 2 ** attempt, MAX_DELAY_MS);
}

/** One POST; classifies the answer. Network errors are retryable (status 0). */
export async function sendOnce(transport: Transport, url: string, body: string): Promise<SendResult> {
  let res;
  try {
    res = await transport(url, body);
  } catch {
    return { ok: false, permanent: false, status: 0 };
  }
  const st = res.status;
  if (st >= 200 && st < 300) return { ok: true, status: st };
  if (st === 429 || st === 503 || st >= 500 || st === 408)
    return { ok: false, permanent: false, status: st, retryAfterMs: parseRetryAfter(res.retryAfter) };
  let message = `HTTP ${st}`;
  try {
    const j = JSON.parse(res.text || '');
    if (j && (j.detail || j.error || j.message)) message = String(j.detail || j.error || j.message).slice(0, 300);
  } catch {
    if (res.text) message = res.text.slice(0, 300);
  }
  return { ok: false, permanent: true, status: st, message };
}

export interface RetryOptions {
  attempts?: number; // total tries, default 4
  sleep?: (ms: number) => Promise<void>;
  isOnline?: () => boolean;
}

/** POST with retries. Stops early on success, a permanent error, or going offline. */
export async function sendWithRetry(transport: Transport, url: string, body: string, o: RetryOptions = {}): Promise<SendResult> {
  const attempts = o.attempts ?? 4;
  const sleep = o.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms)));
  const online = o.isOnline ?? (() => true);
  let last: SendResult = { ok: false, permanent: false, status: 0, offline: true };
  for (let i = 0; i < attempts; i++) {
    if (!online()) return { ok: false, permanent: false, status: 0, offline: true };
    last = await sendOnce(transport, url, body);
    if (last.ok || last.permanent) return last;
    if (i < attempts - 1) await sleep(last.retryAfterMs ?? backoff(i));
  }
  return last;
}

/** The default transport: fetch with text/plain (no CORS preflight), keepalive for small bodies. */
export function fetchTransport(f: typeof fetch = globalThis.fetch.bind(globalThis)): Transport {
  return async (url, body) => {
    const r = await f(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body,
      keepalive: body.length < 60_000,
      credentials: 'omit',
    });
    let text = '';
    try {
      text = await r.text();
    } catch {}
    return { status: r.status, retryAfter: r.headers.get('Retry-After'), text };
  };
}
