// The widget UI: launcher + dialog in a shadow root. No inline scripts, no
// style attributes (colours are CSS custom properties set through the CSSOM).
import { CSS } from './styles';
import type { Strings } from './strings';
import type { FormValues } from './payload';
import type { SendResult } from './deliver';

export interface WidgetOptions {
  strings: Strings;
  position: string;
  color?: string;
  textColor?: string;
  zIndex?: number;
  nonce?: string;
  showLauncher: boolean;
  productAreas: boolean;
  severity: boolean;
  requireEmail: boolean;
  email?: string;
  name?: string;
  loadAreas: () => Promise<{ id: string; label: string }[]>;
  submit: (f: FormValues, openedAt: number, uuid?: string) => { uuid: string; done: Promise<SendResult> };
  /** Takes a masked screenshot (a data URL); undefined: no screenshot offered. */
  screenshot?: () => Promise<string>;
}

type Attrs = Record<string, string | boolean | undefined>;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const k in attrs) {
    const v = attrs[k];
    if (v === true) el.setAttribute(k, '');
    else if (v !== undefined && v !== false) el.setAttribute(k, v);
  }
  for (const c of kids) el.append(c);
  return el;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export class Widget {
  host: HTMLElement;
  root: ShadowRoot;
  launcher?: HTMLButtonElement;
  private backdrop?: HTMLElement;
  private returnFocus?: Element | null;
  private openedAt = 0;
  private pending?: FormValues;
  private uuid?: string; // one per report, reused by every retry
  private shot?: string; // the screenshot data URL, until sent or removed
  private failed = false; // the error view is showing

  constructor(private o: WidgetOptions) {
    this.host = h('div', { 'data-arubug': '' });
    const s = this.host.style;
    if (o.color) s.setProperty('--bg', o.color);
    if (o.textColor) s.setProperty('--fg', o.textColor);
    if (o.zIndex) s.setProperty('--z', String(o.zIndex));
    this.root = this.host.attachShadow({ mode: 'open' });
    const R = this.root as any;
    if (!o.nonce && typeof CSSStyleSheet === 'function' && 'adoptedStyleSheets' in R) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      R.adoptedStyleSheets = [sheet];
    } else {
      this.root.append(h('style', { nonce: o.nonce }, CSS));
    }
    if (o.showLauncher) {
      this.launcher = h('button', { type: 'button', class: `launcher ${o.position}`, 'aria-haspopup': 'dialog' }, o.strings.launcher);
      this.launcher.addEventListener('click', () => this.open());
      this.root.append(this.launcher);
    }
    document.body.append(this.host);
  }

  get isOpen(): boolean {
    return !!this.backdrop;
  }

  open(): void {
    if (this.backdrop) return;
    this.returnFocus = document.activeElement === this.host ? this.launcher : document.activeElement;
    this.openedAt = Date.now();
    this.backdrop = h('div', { class: 'backdrop' });
    this.backdrop.addEventListener('mousedown', (e) => {
      if (e.target === this.backdrop) this.close();
    });
    this.backdrop.addEventListener('keydown', (e) => this.onKey(e));
    this.root.append(this.backdrop);
    this.renderForm();
  }

  close(): void {
    if (!this.backdrop) return;
    this.backdrop.remove();
    this.backdrop = undefined;
    const target = (this.returnFocus as HTMLElement) || this.launcher;
    if (target && typeof target.focus === 'function') target.focus();
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === 'Escape') {
      e.preventDefault();
      this.close();
      return;
    }
    if (e.key !== 'Tab') return;
    const f = Array.from(this.backdrop!.querySelectorAll<HTMLElement>('button,input,select,textarea,[tabindex]')).filter(
      (el) => !(el as any).disabled && el.tabIndex >= 0 && !el.closest('[hidden]'),
    );
    if (!f.length) return;
    const first = f[0], last = f[f.length - 1];
    const active = this.root.activeElement;
    if (e.shiftKey && (active === first || !f.includes(active as HTMLElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !f.includes(active as HTMLElement))) {
      e.preventDefault();
      first.focus();
    }
  }

  private dialog(titleId: string, ...kids: Node[]): HTMLElement {
    this.failed = false;
    const d = h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId }, ...kids);
    this.backdrop!.replaceChildren(d);
    return d;
  }

  private renderForm(): void {
    const S = this.o.strings;
    const v = this.pending || { description: '', email: this.o.email || '', name: this.o.name || '', severity: 'medium' };
    const desc = h('textarea', { id: 'ab-desc', required: true, 'aria-required': 'true', placeholder: S.descriptionPlaceholder, 'aria-describedby': 'ab-desc-err' });
    desc.value = v.description;
    const descErr = h('div', { id: 'ab-desc-err', class: 'err', hidden: true, role: 'alert' });
    const area = h('select', { id: 'ab-area' }, h('option', { value: 'not-sure' }, S.notSure));
    const areaWrap = h('div', { hidden: !this.o.productAreas }, h('label', { for: 'ab-area' }, S.productArea), area);
    if (this.o.productAreas)
      this.o.loadAreas().then((areas) => {
        const keep = area.value;
        area.replaceChildren(
          ...areas.filter((a) => a.id !== 'not-sure').map((a) => h('option', { value: a.id }, a.label)),
          h('option', { value: 'not-sure' }, S.notSure),
        );
        area.value = v.productArea || keep || 'not-sure';
        if (!area.value) area.value = 'not-sure';
      });
    const sev = h(
      'select',
      { id: 'ab-sev' },
      ...(['low', 'medium', 'high', 'critical'] as const).map((x) =>
        h('option', { value: x }, S[('severity' + x[0].toUpperCase() + x.slice(1)) as keyof Strings]),
      ),
    );
    sev.value = v.severity || 'medium';
    const sevWrap = h('div', { hidden: !this.o.severity }, h('label', { for: 'ab-sev' }, S.severity), sev);
    const email = h('input', { id: 'ab-email', type: 'email', autocomplete: 'email', required: this.o.requireEmail, 'aria-required': String(this.o.requireEmail), 'aria-describedby': 'ab-email-err' });
    email.value = v.email || '';
    const emailErr = h('div', { id: 'ab-email-err', class: 'err', hidden: true, role: 'alert' });
    const name = h('input', { id: 'ab-name', type: 'text', autocomplete: 'name' });
    name.value = v.name || '';
    const hp = h('input', { id: 'ab-hp', type: 'text', name: 'website', tabindex: '-1', autocomplete: 'off', 'aria-hidden': 'true' });
    const hpWrap = h('div', { class: 'hp', 'aria-hidden': 'true' }, h('label', { for: 'ab-hp' }, S.honeypot), hp);
    const shotWrap = h('div', { class: 'shot', hidden: !this.o.screenshot });
    if (this.o.screenshot) this.renderShot(shotWrap);
    const submit = h('button', { type: 'submit', class: 'primary' }, S.submit);
    const cancel = h('button', { type: 'button' }, S.cancel);
    cancel.addEventListener('click', () => this.close());
    const form = h(
      'form',
      { novalidate: true },
      h('label', { for: 'ab-desc' }, S.description),
      desc,
      descErr,
      areaWrap,
      sevWrap,
      h('label', { for: 'ab-email' }, this.o.requireEmail ? S.email : S.emailOptional),
      email,
      emailErr,
      h('label', { for: 'ab-name' }, S.name),
      name,
      shotWrap,
      hpWrap,
      h('div', { class: 'row' }, cancel, submit),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const d = desc.value.trim();
      const em = email.value.trim();
      descErr.hidden = !!d;
      descErr.textContent = d ? '' : S.required;
      desc.setAttribute('aria-invalid', String(!d));
      const emailBad = (this.o.requireEmail && !em) || (!!em && !EMAIL_RE.test(em));
      emailErr.hidden = !emailBad;
      emailErr.textContent = emailBad ? (em ? S.invalidEmail : S.required) : '';
      email.setAttribute('aria-invalid', String(emailBad));
      if (!d) return desc.focus();
      if (emailBad) return email.focus();
      this.pending = { description: d, productArea: area.value || 'not-sure', severity: sev.value, email: em, name: name.value.trim(), honeypot: hp.value, screenshot: this.shot };
      this.send(this.pending);
    });
    this.dialog('ab-title', h('h2', { id: 'ab-title' }, S.title), h('p', {}, S.intro), form);
    desc.focus();
  }

  /** The screenshot part of the form: an "Add" button, or the preview with "Remove". */
  private renderShot(box: HTMLElement): void {
    const S = this.o.strings;
    if (this.shot) {
      const remove = h('button', { type: 'button', class: 'shot-remove' }, S.screenshotRemove);
      remove.addEventListener('click', () => {
        this.shot = undefined;
        this.renderShot(box);
        (box.querySelector('button') as HTMLElement).focus();
      });
      box.replaceChildren(
        h('figure', {}, h('img', { class: 'preview', src: this.shot, alt: S.screenshotAlt }), h('figcaption', {}, S.screenshotNote, remove)),
      );
      return;
    }
    const add = h('button', { type: 'button', class: 'shot-add' }, S.screenshotAdd);
    const err = h('div', { class: 'err', role: 'alert', hidden: true });
    add.addEventListener('click', () => {
      add.disabled = true;
      add.textContent = S.screenshotTaking;
      box.setAttribute('aria-busy', 'true');
      this.o.screenshot!().then(
        (url) => {
          box.removeAttribute('aria-busy');
          this.shot = url;
          if (!box.isConnected) return;
          this.renderShot(box);
          (box.querySelector('button') as HTMLElement).focus();
        },
        () => {
          box.removeAttribute('aria-busy');
          add.disabled = false;
          add.textContent = S.screenshotAdd;
          err.textContent = S.screenshotFailed;
          err.hidden = false;
        },
      );
    });
    box.replaceChildren(add, err);
  }

  /** A report that failed here was delivered later (the queue): show the receipt. */
  delivered(uuid: string): void {
    if (uuid !== this.uuid) return;
    this.pending = this.uuid = this.shot = undefined;
    if (this.backdrop && this.failed) this.renderDone(uuid);
  }

  private send(f: FormValues): void {
    const S = this.o.strings;
    const btn = this.backdrop!.querySelector('button.primary') as HTMLButtonElement | null;
    if (btn) {
      btn.disabled = true;
      btn.textContent = S.sending;
    }
    const job = this.o.submit(f, this.openedAt, this.uuid);
    this.uuid = job.uuid;
    job.done.then((r) => {
      if (!this.backdrop) return;
      if (r.ok) {
        this.pending = this.uuid = this.shot = undefined;
        this.renderDone(job.uuid);
      } else this.renderError(r, f);
    });
  }

  private renderDone(uuid: string): void {
    const S = this.o.strings;
    const close = h('button', { type: 'button', class: 'primary' }, S.close);
    close.addEventListener('click', () => this.close());
    this.dialog(
      'ab-title',
      h('h2', { id: 'ab-title' }, S.thanksTitle),
      h('p', { role: 'status' }, S.thanks),
      h('p', {}, S.reportId + ': ', h('code', { 'data-report-id': '' }, uuid)),
      h('div', { class: 'row' }, close),
    );
    close.focus();
  }

  private renderError(r: SendResult, f: FormValues): void {
    const S = this.o.strings;
    const msg = r.ok ? '' : r.permanent ? `${S.errorPermanent} ${r.message}` : r.offline ? S.errorOffline : S.errorRetryable;
    const retry = h('button', { type: 'button', class: 'primary' }, S.retry);
    retry.addEventListener('click', () => (r.ok || !r.permanent ? this.send(f) : this.renderForm()));
    const close = h('button', { type: 'button' }, S.close);
    close.addEventListener('click', () => this.close());
    this.dialog('ab-title', h('h2', { id: 'ab-title' }, S.errorTitle), h('p', { role: 'alert' }, msg), h('div', { class: 'row' }, close, retry));
    this.failed = true;
    retry.focus();
  }

  destroy(): void {
    this.host.remove();
  }
}
