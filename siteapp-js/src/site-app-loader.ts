// Classic-script form of the site app, for posthog-js's opt_in_site_apps.
// posthog-js keeps its instance in window["__$$ph_site_app_" + id] and loads
// this script from the collector, which prefixes it with
// window.__arubug_site_app = {id, config}; posthog-js's own token and
// api_host then tell the widget where to send reports.
import { inject } from './site-app';

const w: any = window;
const boot = w.__arubug_site_app || {};
const id: string = boot.id || 'arubug';
let result: unknown;
try {
  result = inject({ config: boot.config || {}, posthog: w['__$$ph_site_app_' + id] });
} finally {
  const done = w['__$$ph_site_app_' + id + '_callback'];
  if (typeof done === 'function') done(result);
}
