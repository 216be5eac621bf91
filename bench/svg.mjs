// The bench draws its own charts: plain SVG, no dependency, readable on GitHub and in a browser.
const W = 760;
const H = 380;
const M = { top: 40, right: 20, bottom: 60, left: 170 };

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2));

/** A nice step for about `count` axis ticks up to `max`. */
function step(max, count) {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
}

function frame(title, body) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}

/** Horizontal bars: `bars` is [[label, value], …]; coatcheck's bar is highlighted. */
export function barChart({ title, bars }) {
  const max = Math.max(...bars.map(([, v]) => v)) * 1.1;
  const plotW = W - M.left - M.right;
  const rowH = (H - M.top - M.bottom) / bars.length;
  const x = (v) => M.left + (v / max) * plotW;
  const s = step(max, 5);
  let body = '';
  for (let t = 0; t <= max; t += s)
    body += `<line x1="${x(t)}" y1="${M.top}" x2="${x(t)}" y2="${H - M.bottom}" stroke="#ddd"/><text x="${x(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>\n`;
  bars.forEach(([label, v], i) => {
    const y = M.top + i * rowH + rowH * 0.15;
    const fill = /coatcheck|sessions/.test(label) ? '#2b6cb0' : '#a0aec0';
    body += `<rect x="${M.left}" y="${y}" width="${x(v) - M.left}" height="${rowH * 0.7}" fill="${fill}"/>
<text x="${M.left - 8}" y="${y + rowH * 0.4}" text-anchor="end" dominant-baseline="middle">${esc(label)}</text>
<text x="${x(v) + 4}" y="${y + rowH * 0.4}" dominant-baseline="middle">${fmt(v)}</text>\n`;
  });
  return frame(title, body);
}

/** Points [[x, y, ok], …]: failures in red. */
export function scatterChart({ title, xLabel, yLabel, points }) {
  const left = 70;
  const maxX = Math.max(1, ...points.map(([px]) => px)) * 1.02;
  const maxY = Math.max(1, ...points.map(([, py]) => py)) * 1.05;
  const plotW = W - left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (v) => left + (v / maxX) * plotW;
  const y = (v) => H - M.bottom - (v / maxY) * plotH;
  let body = '';
  const sy = step(maxY, 5);
  for (let t = 0; t <= maxY; t += sy)
    body += `<line x1="${left}" y1="${y(t)}" x2="${W - M.right}" y2="${y(t)}" stroke="#ddd"/><text x="${left - 6}" y="${y(t)}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>\n`;
  const sx = step(maxX, 6);
  for (let t = 0; t <= maxX; t += sx)
    body += `<text x="${x(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>\n`;
  for (const [px, py, ok] of points)
    body += `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="1.5" fill="${ok ? '#2b6cb0' : '#e53e3e'}" fill-opacity="0.5"/>`;
  body += `\n<text x="${left + plotW / 2}" y="${H - 16}" text-anchor="middle">${esc(xLabel)}</text>
<text x="16" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + plotH / 2})">${esc(yLabel)}</text>`;
  return frame(title, body);
}
