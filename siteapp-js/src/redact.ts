// DOM-free helpers: string caps and secret redaction in URLs.

export const MAX_STRING = 1000;
const SECRET = /token|key|secret|password|passwd|auth|session|code/i;

/** Cap a string at `max` characters (default 1000); non-strings become "". */
export function cap(s: unknown, max = MAX_STRING): string {
  const t = s == null ? '' : String(s);
  return t.length > max ? t.slice(0, max) : t;
}

function redactQuery(q: string): string {
  return q
    .split('&')
    .map((part) => {
      const i = part.indexOf('=');
      const name = i < 0 ? part : part.slice(0, i);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        /* keep raw */
      }
      return i >= 0 && SECRET.test(decoded) ? name + '=[redacted]' : part;
    })
    .join('&');
}

/**
 * Replace the value of every query-string (and fragment-query) parameter whose
 * name looks secret with "[redacted]", then cap the result. Works on absolute
 * and relative URLs without needing the URL class.
 */
export function redactUrl(url: unknown, max = MAX_STRING): string {
  let u = url == null ? '' : String(url);
  const hashAt = u.indexOf('#');
  let hash = '';
  if (hashAt >= 0) {
    hash = u.slice(hashAt);
    u = u.slice(0, hashAt);
    // SPA routers put query strings in the fragment too: "#/x?token=..".
    const hq = hash.indexOf('?');
    if (hq >= 0) hash = hash.slice(0, hq + 1) + redactQuery(hash.slice(hq + 1));
  }
  const q = u.indexOf('?');
  if (q >= 0) u = u.slice(0, q + 1) + redactQuery(u.slice(q + 1));
  return cap(u + hash, max);
}
