// The package mirror this project is built against carries only the Linux builds of native
// packages. npm then writes a lockfile without the other platforms' optional packages, and
// `npm ci` refuses that lockfile as out of sync. This adds the missing entries, marked optional
// and limited to their platform, so npm ci skips them here and would fetch them elsewhere.
// Run after any `npm install` that changes package-lock.json: node tools/complete-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const PLATFORM =
  /^(?:.*-)?(android|darwin|freebsd|linux|openharmony|win32|wasm32)-(arm64|arm|x64|ia32|loong64|ppc64|riscv64|s390x|wasi)(?:-(gnu|musl|gnueabihf|musleabihf|eabi|msvc))?$/;

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key] || lock.packages[`${path}/${key}`]) continue;
    const m = PLATFORM.exec(name.split('/').pop());
    if (!m) continue;
    const [, os, cpu, abi] = m;
    const target = { version, optional: true };
    if (os === 'wasm32') target.cpu = ['wasm32'];
    else {
      target.os = [os];
      target.cpu = [cpu === 'wasi' ? 'wasm32' : cpu];
      if (abi === 'gnu' || abi === 'gnueabihf') target.libc = ['glibc'];
      if (abi === 'musl' || abi === 'musleabihf') target.libc = ['musl'];
    }
    lock.packages[key] = target;
    added++;
  }
}
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} optional platform entries`);
