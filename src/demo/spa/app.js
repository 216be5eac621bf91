// The whole client side of a BFF: no OAuth library, no token handling. Just fetch with a header.
const $ = (id) => document.getElementById(id);

/** fetch rejected: no HTTP answer at all, so coatcheck (not the API behind it) could not be reached. */
class Unreachable extends Error {
  constructor(call) {
    super(`coatcheck could not be reached (${call})`);
    this.call = call;
  }
}

async function api(path, init = {}) {
  const call = `${init.method ?? 'GET'} ${path}`;
  let res;
  try {
    res = await fetch(path, { ...init, headers: { 'X-CSRF': '1', ...init.headers } });
  } catch {
    throw new Unreachable(call);
  }
  reached();
  return res;
}

// A sign-out leaves this tab for the IdP and comes back to /: the mark says why there is no session then.
const SIGNED_OUT = 'demo.signedOutAt';
const signedOutAt = Number(sessionStorage.getItem(SIGNED_OUT));
sessionStorage.removeItem(SIGNED_OUT);
const justSignedOut = Date.now() - signedOutAt < 10 * 60 * 1000;

let state = 'loading';
let logoutUrl = '/bff/logout';
let lastTokenId;
let expiresAt;
let sessionEndsAt;
let checkedEnd;
let checking;
let calls = 0;

function show(next) {
  state = next;
  for (const id of ['loading', 'signed-out', 'signed-in', 'session-ended']) $(id).hidden = id !== next;
  $('nav').replaceChildren();
  if (next === 'signed-in') {
    const out = document.createElement('button');
    out.id = 'logout';
    out.textContent = 'Sign out';
    out.onclick = () => {
      sessionStorage.setItem(SIGNED_OUT, String(Date.now()));
      window.location.href = logoutUrl;
    };
    $('nav').append(out);
    return;
  }
  // Nothing below is true without a session: no countdown, no last answer.
  expiresAt = undefined;
  sessionEndsAt = undefined;
  lastTokenId = undefined;
  $('api-empty').hidden = false;
  $('api-result').hidden = true;
  $('api-error').hidden = true;
  $('reports-result').hidden = true;
  $('reports-error').hidden = true;
  $('calls').replaceChildren();
}

function reached() {
  $('problem').hidden = true;
  $('problem-calls').replaceChildren();
}

function unreachable(call) {
  const item = document.createElement('li');
  item.append(`${call} at ${new Date().toLocaleTimeString()}`);
  $('problem-calls').prepend(item);
  while ($('problem-calls').children.length > 5) $('problem-calls').lastElementChild.remove();
  $('problem').hidden = false;
}

/** Every failure ends up here, so none is swallowed and none shows as a raw TypeError. */
function report(err) {
  if (err instanceof Unreachable) {
    unreachable(err.call);
    if (state === 'loading')
      $('loading').textContent = 'Could not check your session: coatcheck did not answer.';
    return;
  }
  if (state === 'loading') $('loading').textContent = `Could not check your session: ${err.message}`;
  else {
    $('api-error').textContent = err.message;
    $('api-error').hidden = false;
  }
}

/** GET /bff/user, one at a time: the truth about the session, whatever the page showed before. */
function checkSession() {
  checking ??= loadUser().finally(() => (checking = undefined));
  return checking;
}

async function loadUser() {
  const res = await api('/bff/user');
  if (res.status === 401) {
    // A session this page knew about is gone; one it never saw is just signed out.
    if (state === 'signed-in' || state === 'session-ended') show('session-ended');
    else {
      show('signed-out');
      $('signed-out-note').hidden = !justSignedOut;
    }
    return;
  }
  if (!res.ok) throw new Error(`GET /bff/user answered ${res.status}`);
  const user = await res.json();
  logoutUrl = user.logoutUrl;
  const name = user.claims.name ?? user.claims.preferred_username ?? user.claims.sub;
  $('user-name').textContent = name;
  $('user-email').textContent = user.claims.email ?? '';
  $('avatar').textContent = name
    .split(/\s+/)
    .map((w) => w[0])
    .join('')
    .slice(0, 2)
    .toUpperCase();
  sessionEndsAt = Date.parse(user.sessionExpiresAt) + clockOffset(res);
  $('session-expires').textContent = new Date(sessionEndsAt).toLocaleTimeString();
  $('session-expires').dataset.at = user.sessionExpiresAt;
  if (state !== 'signed-in') show('signed-in');
}

/**
 * How far this machine's clock is ahead of coatcheck's, from the answer's Date header. Asking /bff/user
 * slides the idle timeout, so asking before the server's end (a clock running fast) would keep an idle
 * session alive for ever; rounding the header down errs towards asking late, never early.
 */
function clockOffset(res) {
  const serverNow = Date.parse(res.headers.get('date') ?? '');
  return Number.isNaN(serverNow) ? 0 : Date.now() - serverNow + 500;
}

function tick() {
  if (state !== 'signed-in') return;
  // The session's end is known: ask once when it passes instead of showing "Signed in" past it.
  if (sessionEndsAt !== undefined && Date.now() >= sessionEndsAt && checkedEnd !== sessionEndsAt) {
    checkedEnd = sessionEndsAt;
    checkSession().catch(report);
  }
  if (expiresAt === undefined) return;
  const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  $('token-expires-in').textContent = left === 0 ? 'expired (the next call refreshes it)' : `${left} s`;
}

function logCall(html, text) {
  const item = document.createElement('li');
  item.innerHTML = html;
  if (text !== undefined) item.querySelector('code, .bad').textContent = text;
  $('calls').prepend(item);
  return item;
}

/**
 * One call through an API route, with what every route shares: the button held while it runs, the log
 * line, a 401 told apart from the API refusing, and the session's new end. `show` renders a 200's token.
 */
async function callRoute({ button, error, path, name, show }) {
  $(button).disabled = true;
  $(error).hidden = true;
  try {
    const res = await api(path);
    const body = await res.json().catch(() => ({}));
    calls += 1;
    if (!res.ok) {
      logCall('<span class="bad"></span> ', String(res.status)).append(body.error ?? '');
      // coatcheck answers 401 when the session is gone; /bff/user tells that apart from the API refusing.
      if (res.status === 401) await checkSession();
      if (state !== 'signed-in') return;
      $(error).textContent = body.message ?? `The ${name} answered ${res.status}.`;
      $(error).hidden = false;
      return;
    }
    show(body.token);
    // Each call slides the session's idle timeout: show where it ends now.
    await checkSession();
  } catch (err) {
    if (err instanceof Unreachable) logCall('<span class="bad">no answer</span> ').append(err.call);
    report(err);
  } finally {
    $(button).disabled = false;
  }
}

const audienceText = (t) => (Array.isArray(t.audience) ? t.audience.join(', ') : t.audience);

const callApi = () =>
  callRoute({
    button: 'call-api',
    error: 'api-error',
    path: '/api/whoami',
    name: 'API',
    show(t) {
      const fresh = lastTokenId !== undefined && t.tokenId !== lastTokenId;
      lastTokenId = t.tokenId;
      expiresAt = Date.parse(t.expiresAt);
      $('api-empty').hidden = true;
      $('api-result').hidden = false;
      $('api-subject').textContent = t.subject;
      $('api-issuer').textContent = t.issuer;
      $('api-audience').textContent = audienceText(t);
      $('token-id').textContent = t.tokenId;
      $('token-fresh').hidden = !fresh;
      tick();
      logCall(
        `<span class="ok">200</span> call ${calls}: token <code></code>${fresh ? ' <span class="pill">refreshed</span>' : ''}`,
        t.tokenId.slice(0, 10),
      );
    },
  });

/** The route with its own resource: the same session, another audience, another token. */
const callReports = () =>
  callRoute({
    button: 'call-reports',
    error: 'reports-error',
    path: '/reports/summary',
    name: 'reports API',
    show(t) {
      $('reports-result').hidden = false;
      $('reports-audience').textContent = audienceText(t);
      $('reports-token-id').textContent = t.tokenId;
      logCall(
        `<span class="ok">200</span> reports call ${calls}: token <code></code>`,
        t.tokenId.slice(0, 10),
      );
    },
  });

const login = () => (window.location.href = `/bff/login?returnTo=${encodeURIComponent(location.pathname)}`);
$('login').onclick = login;
$('login-again').onclick = login;
$('call-api').onclick = callApi;
$('call-reports').onclick = callReports;
$('retry').onclick = () => checkSession().catch(report);
// Coming back to the tab is when a stale "Signed in" would mislead: check before the next click.
const recheck = () => document.visibilityState === 'visible' && checkSession().catch(report);
document.addEventListener('visibilitychange', recheck);
// live.js: coatcheck closed the WebSocket because the session ended.
document.addEventListener('coatcheck:session-check', () => checkSession().catch(report));
window.addEventListener('focus', recheck);
setInterval(tick, 1000);
checkSession().catch(report);
