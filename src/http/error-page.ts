import type { BffError, ErrorCode } from '../errors.js';
import { MANAGEMENT_PATHS } from './management-paths.js';

/**
 * The page a browser sees when a login, callback or logout navigation fails. Production shows it too,
 * so it is coatcheck-branded and says nothing about the demo. It needs nothing but itself: the style
 * is inline (helmet's default CSP allows inline styles, not scripts) and it loads no other resource.
 */

export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** What happened, in words a person signing in understands; the code stays below as the detail. */
const SENTENCES: Partial<Record<ErrorCode, string>> = {
  login_state_invalid:
    'This sign-in link was already used, has expired, or was started in another browser. Start again from the app.',
  login_failed: 'The identity provider did not sign you in.',
  issuer_mismatch:
    'The sign-in answer came from an identity provider this site does not trust, so it was refused.',
  code_exchange_failed: 'The sign-in could not be completed with the identity provider. Please try again.',
  invalid_return_url: 'The sign-in link asked to return to a page outside this site, so it was stopped.',
  logout_sid_mismatch:
    'This sign-out link does not belong to your current session, so nothing changed: you are still signed in.',
  internal_error: 'Something went wrong on our side. Please try again.',
};

/** The IdP's error= codes a person can meet, each as a sentence. Others keep the generic login_failed one. */
const IDP_SENTENCES: Record<string, string> = {
  access_denied: 'The sign-in was cancelled or refused at the identity provider.',
  login_required: 'The identity provider needs you to sign in again.',
  interaction_required: 'The identity provider needs you to sign in again.',
  consent_required: 'The identity provider needs your consent before signing you in.',
  temporarily_unavailable: 'The identity provider cannot sign you in right now. Please try again shortly.',
  server_error: 'The identity provider had a problem signing you in. Please try again shortly.',
};

/** As the OIDC layer admits it into messages: printable ASCII, short. Escaped like everything else. */
const IDP_ERROR = /^[\x20-\x7e]{1,100}$/;

/** The IdP's error= value, read from the cause the OIDC layer attached to login_failed. */
function idpErrorOf(e: BffError): string | undefined {
  if (e.code !== 'login_failed') return undefined;
  const error = (e.cause as { error?: unknown } | undefined)?.error;
  return typeof error === 'string' && IDP_ERROR.test(error) ? error : undefined;
}

const STYLE = `
:root{--ink:#1d2330;--muted:#5b6578;--line:#e3e7ef;--bg:#f5f7fb;--accent:#3454d1;--warn:#b42318}
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:520px;margin:10vh auto;padding:0 20px}
.card{background:#fff;border:1px solid var(--line);border-radius:14px;padding:32px;box-shadow:0 1px 2px rgba(16,24,40,.04),0 8px 24px rgba(16,24,40,.06)}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;margin-bottom:22px}
.logo{display:inline-grid;place-items:center;width:30px;height:30px;border-radius:9px;background:#111827;color:#fff;font-size:13px}
h1{font-size:1.35rem;margin:0 0 8px;letter-spacing:-.01em}
p{margin:0 0 20px;color:var(--muted)}
.actions{display:flex;flex-wrap:wrap;gap:10px;align-items:center}
a.button{display:inline-block;padding:10px 18px;border-radius:9px;font-weight:600;text-decoration:none;border:1px solid #cfd6e4;color:var(--ink);background:#fff}
a.button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.detail{margin:24px 0 0;padding-top:14px;border-top:1px solid var(--line);font-size:.85rem;color:var(--muted)}
code{font:.9em/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f7;padding:1px 5px;border-radius:5px;color:var(--ink)}
`;

const FAVICON =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='8' fill='%23111827'/%3E%3Ctext x='16' y='21' font-family='sans-serif' font-size='14' font-weight='700' fill='%23fff' text-anchor='middle'%3Ecc%3C/text%3E%3C/svg%3E";

export interface ErrorPageInput {
  error: BffError;
  /** Which navigation failed: a sign-out offers the way back, the others a new sign-in. */
  action: 'login' | 'callback' | 'logout';
  basePath: string;
  requestId?: unknown;
}

export function errorPage({ error, action, basePath, requestId }: ErrorPageInput): string {
  const idpError = idpErrorOf(error);
  const idpSentence = idpError === undefined ? undefined : IDP_SENTENCES[idpError];
  const sentence = idpSentence ?? SENTENCES[error.code] ?? error.message;
  const title = action === 'logout' ? 'Sign-out did not complete' : 'Sign-in did not complete';
  const app = `${basePath}/`;
  const actions =
    action === 'logout'
      ? `<a class="button primary" href="${escapeHtml(app)}">Back to the app</a>`
      : `<a class="button primary" href="${escapeHtml(`${basePath}${MANAGEMENT_PATHS.login}`)}">Try signing in again</a>` +
        `<a class="button" href="${escapeHtml(app)}">Back to the app</a>`;
  const codes = [error.code, idpError].filter((c) => c !== undefined);
  const reference = typeof requestId === 'string' ? ` · reference <code>${escapeHtml(requestId)}</code>` : '';
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${escapeHtml(title)} · coatcheck</title><link rel="icon" href="${FAVICON}">` +
    `<style>${STYLE}</style></head><body><main><div class="card" role="alert">` +
    `<div class="brand"><span class="logo" aria-hidden="true">cc</span> coatcheck</div>` +
    `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(sentence)}</p>` +
    `<div class="actions">${actions}</div>` +
    `<p class="detail">Error code: ${codes.map((c) => `<code>${escapeHtml(c)}</code>`).join(' ')}${reference}</p>` +
    `</div></main></body></html>`
  );
}
