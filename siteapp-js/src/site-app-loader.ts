// Classic-script form of the site app, for posthog-js's opt_in_site_apps.
// posthog-js keeps its instance in window["__$$ph_site_app_" + id] and loads
// this script from the collector, which prefixes it with
// window.__arubug_site_app = {id, config}; posthog-js's own token and
// api_host then tell the widget where to send reports. boot.assets is the
// path of the widget's files (the lazy screenshot.js), relative to this
// script's own URL.
import { inject } from './site-app';

const w: any = window;
const boot = w.__arubug_site_app || {};
const id: string = boot.id || 'arubug';
const me = document.currentScript as HTMLScriptElement | null;
let result: unknown;
try {
  const config = { ...boot.config };
  if (boot.assets && !config.assetsUrl) {
    try {
      config.assetsUrl = new URL(boot.assets, (me && me.src) || location.href).href;
    } catch {}
  }
  result = inject({ config, posthog: w['__$$ph_site_app_' + id] });
} finally {
  const done = w['__$$ph_site_app_' + id + '_callback'];
  if (typeof done === 'function') done(result);
}
