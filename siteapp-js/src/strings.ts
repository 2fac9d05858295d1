// Every user-visible string; override any of them with the `strings` option.
export const en = {
  launcher: 'Report a bug',
  title: 'Report a bug',
  intro: 'Tell us what went wrong. We attach technical details (recent errors, failed requests, page and browser info) to help us fix it.',
  description: 'What happened?',
  descriptionPlaceholder: 'What did you do, what did you expect, what happened instead?',
  productArea: 'Product area',
  notSure: 'Not sure',
  severity: 'Severity',
  severityLow: 'Low',
  severityMedium: 'Medium',
  severityHigh: 'High',
  severityCritical: 'Critical',
  email: 'Email',
  emailOptional: 'Email (optional)',
  name: 'Name (optional)',
  honeypot: 'Leave this field empty',
  submit: 'Send report',
  sending: 'Sending…',
  cancel: 'Cancel',
  close: 'Close',
  thanksTitle: 'Thank you!',
  thanks: 'Your report was received.',
  reportId: 'Report ID',
  errorTitle: 'Could not send the report',
  errorOffline: 'You seem to be offline. The report is saved in this browser and will be sent automatically when you are back online.',
  errorRetryable: 'The server is busy. The report is saved in this browser and will be sent later; you can also try again now.',
  errorPermanent: 'The server rejected the report:',
  retry: 'Retry',
  required: 'Please fill in this field.',
  invalidEmail: 'Please enter a valid email address.',
  screenshotAdd: 'Add a screenshot',
  screenshotTaking: 'Taking a screenshot…',
  screenshotRemove: 'Remove screenshot',
  screenshotAlt: 'Screenshot of this page',
  screenshotNote: 'Form fields are blanked out in the screenshot.',
  screenshotFailed: 'The screenshot could not be taken. You can send the report without it.',
};
export type Strings = typeof en;

export const de: Strings = {
  launcher: 'Fehler melden',
  title: 'Fehler melden',
  intro: 'Beschreiben Sie, was schiefgelaufen ist. Wir fügen technische Details (letzte Fehler, fehlgeschlagene Anfragen, Seiten- und Browserinfos) hinzu, damit wir den Fehler beheben können.',
  description: 'Was ist passiert?',
  descriptionPlaceholder: 'Was haben Sie getan, was haben Sie erwartet, was ist stattdessen passiert?',
  productArea: 'Produktbereich',
  notSure: 'Weiß nicht',
  severity: 'Schweregrad',
  severityLow: 'Niedrig',
  severityMedium: 'Mittel',
  severityHigh: 'Hoch',
  severityCritical: 'Kritisch',
  email: 'E-Mail',
  emailOptional: 'E-Mail (optional)',
  name: 'Name (optional)',
  honeypot: 'Dieses Feld leer lassen',
  submit: 'Meldung senden',
  sending: 'Wird gesendet…',
  cancel: 'Abbrechen',
  close: 'Schließen',
  thanksTitle: 'Vielen Dank!',
  thanks: 'Ihre Meldung ist eingegangen.',
  reportId: 'Meldungs-ID',
  errorTitle: 'Die Meldung konnte nicht gesendet werden',
  errorOffline: 'Sie scheinen offline zu sein. Die Meldung ist in diesem Browser gespeichert und wird automatisch gesendet, sobald Sie wieder online sind.',
  errorRetryable: 'Der Server ist ausgelastet. Die Meldung ist in diesem Browser gespeichert und wird später gesendet; Sie können es auch jetzt erneut versuchen.',
  errorPermanent: 'Der Server hat die Meldung abgelehnt:',
  retry: 'Erneut versuchen',
  required: 'Bitte füllen Sie dieses Feld aus.',
  invalidEmail: 'Bitte geben Sie eine gültige E-Mail-Adresse ein.',
  screenshotAdd: 'Bildschirmfoto hinzufügen',
  screenshotTaking: 'Bildschirmfoto wird erstellt…',
  screenshotRemove: 'Bildschirmfoto entfernen',
  screenshotAlt: 'Bildschirmfoto dieser Seite',
  screenshotNote: 'Formularfelder sind im Bildschirmfoto unkenntlich gemacht.',
  screenshotFailed: 'Das Bildschirmfoto konnte nicht erstellt werden. Sie können die Meldung auch ohne senden.',
};

const LOCALES: Record<string, Strings> = { en, de };

/** Strings for `locale` ("de", "de-AT", … fall back to English), with `overrides` on top. */
export function resolveStrings(locale?: string, overrides?: Partial<Strings>): Strings {
  const base = LOCALES[String(locale || 'en').toLowerCase().split(/[-_]/)[0]] || en;
  const out = { ...base };
  if (overrides) for (const k in overrides) if (k in out && typeof (overrides as any)[k] === 'string') (out as any)[k] = (overrides as any)[k];
  return out;
}
