import { readFileSync } from 'node:fs';
import { envSchema } from '../src/config/schema.js';
import { demoSchema } from '../src/demo/run.js';
import { ERRORS } from '../src/errors.js';

/**
 * The README is the product's contract with its users: every variable and error code it names must
 * exist, and everything that exists must be documented, so the two cannot drift apart unnoticed.
 */
const readme = readFileSync('README.md', 'utf8');

/** The lines under a heading, up to the next heading of the same or a higher level; code blocks skipped. */
function section(title: string): string[] {
  const lines: string[] = [];
  let level = 0;
  let fenced = false;
  for (const line of readme.split('\n')) {
    if (line.trimStart().startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^(#+) (.*)$/.exec(line);
    if (heading) {
      if (level && heading[1]!.length <= level) break;
      if (heading[2] === title) {
        level = heading[1]!.length;
        continue;
      }
    }
    if (level) lines.push(line);
  }
  if (!level) throw new Error(`README.md has no section "${title}"`);
  return lines;
}

/** The table rows of a section, as arrays of trimmed cells (the header and divider rows left out). */
function rows(title: string): string[][] {
  return section(title)
    .filter((l) => l.startsWith('|') && !/^\|[\s|:-]+\|$/.test(l))
    .slice(1)
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}

const code = (cell: string | undefined): string =>
  /^`([^`]+)`$/.exec(cell ?? '')?.[1] ?? `(not code: ${cell})`;
const sorted = (names: Iterable<string>): string[] => [...new Set(names)].sort();
const missingFrom = (names: Iterable<string>, from: Iterable<string>): string[] => {
  const known = new Set(from);
  return sorted([...names].filter((n) => !known.has(n)));
};

const envVars = Object.keys(envSchema.shape);
const demoVars = Object.keys(demoSchema.shape);

test('every BFF_ variable the README names exists in the configuration schema or the demo schema', () => {
  const named = readme.match(/\bBFF_[A-Z][A-Z0-9_]*\b/g) ?? [];
  expect(named.length).toBeGreaterThan(0);
  expect(missingFrom(named, [...envVars, ...demoVars])).toEqual([]);
});

test('the configuration table lists exactly the variables of the configuration schema', () => {
  const documented = rows('Configuration').map((r) => code(r[0]));
  expect(missingFrom(envVars, documented)).toEqual([]);
  expect(missingFrom(documented, envVars)).toEqual([]);
  expect(documented.length).toBe(new Set(documented).size);
});

test("the demo mode table lists every variable of the demo's schema, and only known ones", () => {
  const documented = rows('Demo mode').map((r) => code(r[0]));
  expect(missingFrom(demoVars, documented)).toEqual([]);
  expect(missingFrom(documented, [...demoVars, ...envVars])).toEqual([]);
});

test('the error table lists exactly the error codes of src/errors.ts, each with its status', () => {
  const table = rows('Errors').map((r) => ({ status: Number(r[0]), error: code(r[1]) }));
  const documented = table.map((r) => r.error);
  expect(missingFrom(Object.keys(ERRORS), documented)).toEqual([]);
  expect(missingFrom(documented, Object.keys(ERRORS))).toEqual([]);
  expect(documented.length).toBe(new Set(documented).size);
  const wrongStatus = table.filter(
    (r) => r.status !== (ERRORS as Record<string, { status: number }>)[r.error]?.status,
  );
  expect(wrongStatus).toEqual([]);
});
