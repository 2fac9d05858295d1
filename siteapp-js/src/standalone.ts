// Standalone IIFE: <script src="arubug.js" data-token="phc_…" data-host="https://collector" async>
// auto-initialises; otherwise call window.arubug.init({token, host, …}).
import { createArubug, Arubug, ArubugOptions } from './core';

const w: any = window;
let inst: Arubug | undefined;
const s = document.currentScript as HTMLScriptElement | null;
// The lazy screenshot.js sits next to this file.
const assetsUrl = s && s.src ? s.src.replace(/[^/]*([?#].*)?$/, '') : undefined;

const api = w.arubug && w.arubug.__v ? w.arubug : {
  __v: 1, // a second copy of the script reuses the first one's instance
  init(o: ArubugOptions): Arubug {
    if (inst) inst.destroy();
    if (!o.assetsUrl && assetsUrl) o = { ...o, assetsUrl };
    if (!o.posthog && w.posthog && typeof w.posthog.get_distinct_id === 'function') o = { ...o, posthog: w.posthog };
    return (inst = createArubug(o));
  },
  open: () => inst && inst.open(),
  close: () => inst && inst.close(),
};
w.arubug = api;

const d = s && s.dataset;
if (d && d.token && d.host) {
  const bool = (v?: string) => (v === undefined ? undefined : v !== 'false');
  api.init({
    token: d.token,
    host: d.host,
    locale: d.locale,
    buttonText: d.buttonText,
    position: d.position as ArubugOptions['position'],
    color: d.color,
    textColor: d.textColor,
    email: d.email,
    nonce: d.nonce || (s && s.nonce) || undefined,
    requireEmail: bool(d.requireEmail),
    productAreas: bool(d.productAreas),
    showLauncher: bool(d.showLauncher),
    shortcut: d.shortcut === 'false' ? false : d.shortcut,
    screenshot: d.screenshot === 'true',
  });
}
