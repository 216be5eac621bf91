/** The demo IdP's pages: small, self-contained, styled like the demo app so the flow reads as one product. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `
:root{--ink:#1d2330;--muted:#5b6578;--line:#e3e7ef;--bg:#f5f7fb;--accent:#3454d1;--accent-ink:#fff;--warn:#b42318}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:400px;margin:8vh auto;padding:0 16px}
.card{background:#fff;border:1px solid var(--line);border-radius:14px;padding:28px;box-shadow:0 1px 2px rgba(16,24,40,.04),0 8px 24px rgba(16,24,40,.06)}
.brand{display:flex;align-items:center;gap:10px;font-weight:600;margin-bottom:18px;color:var(--muted)}
.brand b{display:inline-grid;place-items:center;width:28px;height:28px;border-radius:8px;background:#111827;color:#fff;font-size:14px}
h1{font-size:1.3rem;margin:0 0 6px}p{margin:0 0 16px;color:var(--muted)}
label{display:block;font-size:.9rem;font-weight:600;margin:14px 0 6px}
input{width:100%;padding:10px 12px;border:1px solid #cfd6e4;border-radius:8px;font:inherit}
input:focus{outline:2px solid var(--accent);outline-offset:1px;border-color:transparent}
button{margin-top:20px;width:100%;padding:11px 14px;border:0;border-radius:8px;background:var(--accent);color:var(--accent-ink);font:inherit;font-weight:600;cursor:pointer}
button.secondary{background:#fff;color:var(--ink);border:1px solid #cfd6e4;margin-top:10px}
.hint{margin-top:18px;padding:12px 14px;border-radius:8px;background:#f0f4ff;color:#243b8a;font-size:.9rem}
.hint code{font-weight:600}
.error{color:var(--warn);font-size:.9rem;margin-top:10px}
ul.scopes{padding-left:20px;margin:0 0 8px;color:var(--ink)}
`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><main><div class="card"><div class="brand"><b>ID</b> Demo Identity Provider</div>${body}</div></main></body></html>`;
}

export function loginPage(
  uid: string,
  clientName: string,
  demo: { username: string; password: string } | undefined,
  error?: string,
): string {
  return page(
    'Sign in',
    `<h1>Sign in</h1><p>to continue to ${escapeHtml(clientName)}</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="username">Username</label><input id="username" name="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
${error ? `<div class="error" role="alert">${escapeHtml(error)}</div>` : ''}
<button type="submit">Sign in</button></form>
${demo ? `<div class="hint">Demo credentials: <code>${escapeHtml(demo.username)}</code> / <code>${escapeHtml(demo.password)}</code></div>` : ''}`,
  );
}

export function consentPage(uid: string, clientName: string, scopes: string[]): string {
  return page(
    'Allow access',
    `<h1>Allow access</h1><p>${escapeHtml(clientName)} asks to:</p>
<ul class="scopes">${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit" id="allow">Allow</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit" class="secondary">Deny</button></form>`,
  );
}

export function logoutPage(form: string): string {
  return page(
    'Sign out',
    `<h1>Sign out?</h1><p>You will be signed out of the identity provider and every app using it.</p>${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" id="confirm-logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`,
  );
}

export function loggedOutPage(): string {
  return page('Signed out', '<h1>Signed out</h1><p>You have been signed out.</p>');
}
