// Page/browser/posthog context, with every posthog call guarded.
import type { PageContext } from './payload';
import { redactUrl } from './redact';

export type PostHogLike = any;

export function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

export function posthogFlags(ph: PostHogLike): string[] | undefined {
  if (!ph) return undefined;
  const flags =
    safe(() => ph.featureFlags.getFlags()) ??
    safe(() => Object.keys(ph.featureFlags.getFlagVariants()).filter((k) => ph.featureFlags.getFlagVariants()[k])) ??
    safe(() => ph.get_property('$active_feature_flags'));
  return Array.isArray(flags) ? flags.filter((f) => typeof f === 'string').slice(0, 200) : undefined;
}

export function posthogEmail(ph: PostHogLike): string | undefined {
  const e = safe(() => ph.get_property('$stored_person_properties').email) ?? safe(() => ph.persistence.props.$stored_person_properties.email);
  return typeof e === 'string' && e.includes('@') ? e : undefined;
}

export function collectContext(w: any, ph: PostHogLike, ids: { sessionId: string; windowId: string }): PageContext {
  const loc = safe(() => w.location) || {};
  const nav = safe(() => w.navigator) || {};
  const scr = safe(() => w.screen) || {};
  const sessionId = (ph && safe(() => ph.get_session_id())) || ids.sessionId;
  const windowId =
    (ph && safe(() => ph.sessionManager.checkAndGetSessionAndWindowId(true).windowId)) || ids.windowId;
  return {
    $current_url: redactUrl(loc.href),
    $pathname: loc.pathname,
    $host: loc.host,
    $referrer: redactUrl(safe(() => w.document.referrer) || '$direct'),
    $viewport_width: w.innerWidth,
    $viewport_height: w.innerHeight,
    $screen_width: scr.width,
    $screen_height: scr.height,
    $browser_language: nav.language,
    $timezone: safe(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
    $raw_user_agent: nav.userAgent,
    $session_id: sessionId,
    $window_id: windowId,
    $active_feature_flags: posthogFlags(ph),
  };
}
