// The screenshot chunk (dist/screenshot.js), loaded lazily by the widget with
// import() from the directory it was itself loaded from, so the main bundle
// stays small. It renders the visible part of the page with modern-screenshot
// (DOM clone -> SVG foreignObject -> canvas; no script, and the only page
// change is the library's hidden, empty sandbox iframe), masks every form
// control and anything marked data-arubug-mask in the clone (the live page is
// never touched), leaves the widget itself out, and returns a JPEG data URL
// downscaled and recompressed until it fits the size cap.
import { domToCanvas, type Options } from 'modern-screenshot';

/** Elements whose content never reaches a screenshot. */
export const MASK_SELECTOR = 'input,textarea,select,[data-arubug-mask]';
/** Widest image in pixels; wider viewports are scaled down. */
export const MAX_WIDTH = 1280;
/** Longest data URL in characters (the collector takes 1 MiB per event). */
export const MAX_CHARS = 700_000;
const QUALITIES = [0.8, 0.65, 0.5, 0.35];
const MASK_STYLE: Record<string, string> = {
  'background': '#d1d5db',
  'background-image': 'none',
  'color': 'transparent',
  '-webkit-text-fill-color': 'transparent',
  'text-shadow': 'none',
  'caret-color': 'transparent',
};

/**
 * maskNode blanks a cloned element that may hold user input: its value,
 * text and children are removed and it is painted as a grey block of the
 * same size (the clone carries its computed size inline). It reports whether
 * it masked anything. It only ever sees the clone.
 */
export function maskNode(n: Node): boolean {
  if (n.nodeType !== 1) return false;
  const el = n as Element;
  if (!el.matches(MASK_SELECTOR)) return false;
  el.removeAttribute('value');
  el.removeAttribute('placeholder');
  el.removeAttribute('checked');
  el.removeAttribute('selected');
  el.replaceChildren();
  const st = (el as HTMLElement).style;
  if (st) for (const k in MASK_STYLE) st.setProperty(k, MASK_STYLE[k], 'important');
  el.setAttribute('data-arubug-masked', '');
  return true;
}

function background(w: Window, el: Element | null): string | undefined {
  const c = el ? w.getComputedStyle(el).backgroundColor : '';
  return c && c !== 'transparent' && !/^rgba\(.*,\s*0\)$/.test(c) ? c : undefined;
}

/** The modern-screenshot options for the visible part of the page in `w`. */
export function shotOptions(w: Window, maxWidth = MAX_WIDTH): Options & { width: number; height: number } {
  const doc = w.document;
  const root = doc.documentElement;
  const width = root.clientWidth || w.innerWidth;
  const height = root.clientHeight || w.innerHeight;
  return {
    width,
    height,
    scale: Math.min(1, maxWidth / width),
    backgroundColor: background(w, root) || background(w, doc.body) || '#ffffff',
    // Show what the user sees: shift the clone by the scroll offset.
    style: { marginTop: `${-w.scrollY}px`, marginLeft: `${-w.scrollX}px` } as Partial<CSSStyleDeclaration>,
    filter: (n: Node) => !(n.nodeType === 1 && (n as Element).hasAttribute('data-arubug')),
    onCloneEachNode: (n: Node) => {
      maskNode(n);
    },
    // Embedding web fonts needs a <style> element in a scratch document,
    // which a strict CSP (style-src without 'unsafe-inline') blocks, with a
    // violation report: text is drawn in the fallback fonts instead.
    font: false,
    timeout: 8000,
  };
}

function shrink(c: HTMLCanvasElement, f: number): HTMLCanvasElement {
  const out = c.ownerDocument.createElement('canvas');
  out.width = Math.max(1, Math.round(c.width * f));
  out.height = Math.max(1, Math.round(c.height * f));
  const ctx = out.getContext('2d')!;
  ctx.drawImage(c, 0, 0, out.width, out.height);
  return out;
}

/** encode returns the canvas as a JPEG data URL of at most maxChars, lowering the quality, then the size. */
export function encode(c: HTMLCanvasElement, maxChars = MAX_CHARS): string {
  for (;;) {
    for (const q of QUALITIES) {
      const url = c.toDataURL('image/jpeg', q);
      if (url.startsWith('data:image/jpeg') && url.length <= maxChars) return url;
    }
    if (c.width < 160) throw new Error('screenshot: cannot get under the size cap');
    c = shrink(c, 0.7);
  }
}

/** capture renders the visible page, masked, as a JPEG data URL (≤ maxWidth px wide, ≤ maxChars). */
export async function capture(w: Window = window, o: { maxWidth?: number; maxChars?: number } = {}): Promise<string> {
  const canvas = await domToCanvas(w.document.documentElement, shotOptions(w, o.maxWidth));
  return encode(canvas, o.maxChars);
}
