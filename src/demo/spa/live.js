// A WebSocket through coatcheck. The browser sends only its cookie and its Origin; coatcheck checks
// both, attaches the access token for the API, and closes the socket (4401) when the session ends,
// wherever it ends: another tab's sign-out, the identity provider's, or a timeout.
const $ = (id) => document.getElementById(id);
const SESSION_ENDED = 4401;

let ws;

function status(text, kind) {
  $('live-status').textContent = text;
  $('live-status').className = `pill ${kind}`;
}

function note(text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('live-log').prepend(item);
  while ($('live-log').children.length > 6) $('live-log').lastElementChild.remove();
}

function connect() {
  if (ws) return;
  const socket = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/live`);
  ws = socket;
  $('live-ended').hidden = true;
  $('live-reconnect').hidden = true;
  status('connecting', 'muted');
  socket.onopen = () => status('open', 'ok');
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'hello')
      note(`connected as ${m.subject}; the token it was opened with expires ${m.tokenExpiresAt}`);
    else if (m.type === 'echo') note(`echo: ${m.text}`);
    else note('tick');
  };
  socket.onclose = (e) => {
    if (ws === socket) ws = undefined;
    const why = `${e.code}${e.reason ? ` ${e.reason}` : ''}`;
    status(`closed: ${why}`, 'bad');
    note(`closed: ${why}`);
    if (e.code === SESSION_ENDED) {
      $('live-ended').textContent =
        `The live connection was closed by coatcheck the moment the session ended (${why}).`;
      $('live-ended').hidden = false;
      // The page asks /bff/user, which shows "Your session ended".
      document.dispatchEvent(new Event('coatcheck:session-check'));
    } else if (!$('signed-in').hidden) {
      $('live-reconnect').hidden = false;
    }
  };
}

function disconnect() {
  ws?.close(1000, 'page signed out');
  ws = undefined;
}

$('live-send').onclick = () => {
  if (ws?.readyState === WebSocket.OPEN) ws.send(`hello at ${new Date().toLocaleTimeString()}`);
};
$('live-reconnect').onclick = connect;
// Connected while the signed-in view shows, and only then.
const follow = () => ($('signed-in').hidden ? disconnect() : connect());
new MutationObserver(follow).observe($('signed-in'), { attributes: true, attributeFilter: ['hidden'] });
follow();
