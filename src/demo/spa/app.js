// The whole client side of a BFF: no OAuth library, no token handling. Just fetch with a header.
const $ = (id) => document.getElementById(id);
const api = (path, init = {}) => fetch(path, { ...init, headers: { 'X-CSRF': '1', ...init.headers } });

let logoutUrl = '/bff/logout';
let lastTokenId;
let expiresAt;
let calls = 0;

function show(state) {
  for (const id of ['loading', 'signed-out', 'signed-in']) $(id).hidden = id !== state;
  $('nav').replaceChildren();
  if (state === 'signed-in') {
    const out = document.createElement('button');
    out.id = 'logout';
    out.textContent = 'Sign out';
    out.onclick = () => (window.location.href = logoutUrl);
    $('nav').append(out);
  }
}

async function loadUser() {
  const res = await api('/bff/user');
  if (res.status === 401) return show('signed-out');
  if (!res.ok) throw new Error(`/bff/user answered ${res.status}`);
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
  $('session-expires').textContent = new Date(user.sessionExpiresAt).toLocaleTimeString();
  show('signed-in');
}

function tick() {
  if (expiresAt === undefined) return;
  const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  $('token-expires-in').textContent = left === 0 ? 'expired (the next call refreshes it)' : `${left} s`;
}

async function callApi() {
  $('call-api').disabled = true;
  $('api-error').hidden = true;
  try {
    const res = await api('/api/whoami');
    const body = await res.json();
    const item = document.createElement('li');
    calls += 1;
    if (!res.ok) {
      item.innerHTML = '<span class="bad"></span> ';
      item.querySelector('.bad').textContent = String(res.status);
      item.append(body.error ?? '');
      $('calls').prepend(item);
      if (res.status === 401) return loadUser();
      $('api-error').textContent = body.message ?? `The API answered ${res.status}.`;
      $('api-error').hidden = false;
      return;
    }
    const t = body.token;
    const fresh = lastTokenId !== undefined && t.tokenId !== lastTokenId;
    lastTokenId = t.tokenId;
    expiresAt = Date.parse(t.expiresAt);
    $('api-empty').hidden = true;
    $('api-result').hidden = false;
    $('api-subject').textContent = t.subject;
    $('api-issuer').textContent = t.issuer;
    $('api-audience').textContent = Array.isArray(t.audience) ? t.audience.join(', ') : t.audience;
    $('token-id').textContent = t.tokenId;
    $('token-fresh').hidden = !fresh;
    tick();
    item.innerHTML = `<span class="ok">200</span> call ${calls}: token <code></code>${fresh ? ' <span class="pill">refreshed</span>' : ''}`;
    item.querySelector('code').textContent = t.tokenId.slice(0, 10);
    $('calls').prepend(item);
  } catch (err) {
    $('api-error').textContent = String(err);
    $('api-error').hidden = false;
  } finally {
    $('call-api').disabled = false;
  }
}

$('login').onclick = () =>
  (window.location.href = `/bff/login?returnTo=${encodeURIComponent(location.pathname)}`);
$('call-api').onclick = callApi;
setInterval(tick, 1000);
loadUser().catch((err) => {
  $('loading').textContent = `Could not reach coatcheck: ${err.message}`;
});
