// PostHog site app entry: inject({ config, posthog }).
//
// Delivery: by default the report is POSTed straight to the collector
// (`{host}/e/`, host = config.host or posthog's api_host, token = posthog's
// token) with the uuid generated once per report. posthog.capture accepts
// {uuid} since posthog-js 1.2xx, but it only queues the event: it never tells
// the caller whether the collector stored it, so the widget could not show a
// truthful receipt or an error with Retry. Set config.delivery = "posthog" to
// use posthog.capture('$bug_report', props, {uuid, send_instantly: true})
// anyway (the receipt then means "handed to posthog-js").
import { createArubug, Arubug } from './core';

const yes = (v: unknown, dflt: boolean) => (v === undefined || v === null || v === '' ? dflt : v === true || v === 'true' || v === 'yes');

export function inject({ config, posthog }: { config: Record<string, any>; posthog: any }): Arubug {
  const c = config || {};
  const ph = posthog || {};
  const phc = ph.config || {};
  let strings: any;
  try {
    strings = typeof c.strings === 'string' && c.strings ? JSON.parse(c.strings) : c.strings;
  } catch {}
  return createArubug({
    token: c.token || phc.token,
    host: c.host || phc.api_host,
    buttonText: c.buttonText,
    position: c.position,
    color: c.buttonColor,
    textColor: c.textColor,
    productAreas: yes(c.productAreas, true),
    severity: yes(c.severity, true),
    requireEmail: yes(c.requireEmail, true),
    locale: c.locale,
    strings,
    shortcut: c.shortcut === 'false' || c.shortcut === false ? false : c.shortcut || undefined,
    delivery: c.delivery === 'posthog' ? 'posthog' : 'collector',
    screenshot: yes(c.screenshot, false),
    assetsUrl: c.assetsUrl || undefined,
    posthog,
  });
}
