/* global document */
// The page never sees a token: it sends X-CSRF: 1 and the browser sends the session cookie.
const csrf = { 'X-CSRF': '1' };
const out = document.getElementById('out');

async function show(url) {
  const res = await fetch(url, { headers: csrf });
  out.textContent = `${res.status} ${await res.text()}`;
}

fetch('/bff/user', { headers: csrf }).then(async (res) => {
  const who = document.getElementById('who');
  if (res.status !== 200) {
    who.textContent = 'Not logged in.';
    return;
  }
  const user = await res.json();
  who.textContent = `Logged in as ${user.claims.name ?? user.claims.sub}.`;
  const logout = document.getElementById('logout');
  logout.href = user.logoutUrl;
  logout.hidden = false;
});
document.getElementById('api').addEventListener('click', () => show('/api/orders'));
document.getElementById('server').addEventListener('click', () => show('/orders'));
