// Console and network capture: ring buffers of the last console errors/warnings
// and failed requests. Takes the global object as a parameter so tests can
// pass a fake one.
import { Ring } from './ring';
import { cap, redactUrl } from './redact';

export interface ConsoleEntry { level: string; message: string; at: string }
export interface NetworkEntry { method: string; url: string; status: number; duration_ms: number; at: string }

export const CONSOLE_MAX = 50;
export const NETWORK_MAX = 20;

export interface Recorder {
  console: Ring<ConsoleEntry>;
  network: Ring<NetworkEntry>;
  /** URLs (prefixes) whose requests are not recorded (the collector itself). */
  ignore: string[];
}

function fmt(a: unknown): string {
  if (typeof a === 'string') return a;
  if (a instanceof Error) return `${a.name}: ${a.message}`;
  try {
    return JSON.stringify(a) ?? String(a);
  } catch {
    return String(a);
  }
}

export function recordConsole(r: Recorder, level: string, args: unknown[], now = new Date()): void {
  r.console.push({ level, message: cap(args.map(fmt).join(' ')), at: now.toISOString() });
}

export function recordNetwork(r: Recorder, method: string, url: string, status: number, started: number, ended: number, now = new Date()): void {
  if (status >= 200 && status < 400) return; // failed requests only
  if (r.ignore.some((p) => p && url.indexOf(p) === 0)) return;
  r.network.push({
    method: cap(String(method || 'GET').toUpperCase(), 16),
    url: redactUrl(url),
    status,
    duration_ms: Math.max(0, Math.round(ended - started)),
    at: now.toISOString(),
  });
}

const KEY = '__arubugRecorder';

/** Install the console/fetch/XHR wrappers once per global; later calls return the same recorder. */
export function installCapture(g: any = globalThis): Recorder {
  if (g[KEY]) return g[KEY];
  const r: Recorder = { console: new Ring(CONSOLE_MAX), network: new Ring(NETWORK_MAX), ignore: [] };
  g[KEY] = r;
  const con = g.console;
  if (con) {
    for (const level of ['error', 'warn']) {
      const orig = con[level];
      if (typeof orig !== 'function') continue;
      con[level] = function (this: unknown, ...args: unknown[]) {
        try {
          recordConsole(r, level, args);
        } catch {
          /* never break the page */
        }
        return orig.apply(this, args);
      };
    }
  }
  if (g.addEventListener) {
    g.addEventListener('error', (e: any) => {
      try {
        recordConsole(r, 'error', [e && (e.error || e.message)]);
      } catch {}
    });
    g.addEventListener('unhandledrejection', (e: any) => {
      try {
        recordConsole(r, 'error', ['Unhandled rejection:', e && e.reason]);
      } catch {}
    });
  }
  const abs = (u: string) => {
    try {
      return g.location ? new URL(u, g.location.href).href : u;
    } catch {
      return u;
    }
  };
  const origFetch = g.fetch;
  if (typeof origFetch === 'function') {
    g.fetch = function (this: unknown, input: any, init?: any) {
      const t0 = Date.now();
      const method = (init && init.method) || (input && typeof input === 'object' && input.method) || 'GET';
      const url = abs(typeof input === 'string' ? input : (input && (input.href || input.url)) || String(input));
      const p = origFetch.call(this ?? g, input, init);
      p.then(
        (res: any) => {
          try {
            recordNetwork(r, method, url, res.status, t0, Date.now());
          } catch {}
        },
        () => {
          try {
            recordNetwork(r, method, url, 0, t0, Date.now());
          } catch {}
        },
      );
      return p;
    };
  }
  const X = g.XMLHttpRequest;
  if (X && X.prototype) {
    const open = X.prototype.open;
    const send = X.prototype.send;
    X.prototype.open = function (this: any, method: string, url: any) {
      this.__arubug = { method, url: abs(String(url)) };
      return open.apply(this, arguments as any);
    };
    X.prototype.send = function (this: any) {
      const m = this.__arubug;
      if (m) {
        const t0 = Date.now();
        this.addEventListener('loadend', () => {
          try {
            recordNetwork(r, m.method, m.url, this.status || 0, t0, Date.now());
          } catch {}
        });
      }
      return send.apply(this, arguments as any);
    };
  }
  return r;
}
