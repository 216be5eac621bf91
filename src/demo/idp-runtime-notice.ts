/**
 * oidc-provider warns at import time on any runtime older than its newest LTS line, Node 20
 * included, which coatcheck still tests. The embedded IdP is a demo and test fixture, so that
 * notice is not the product's to show. Imported just before oidc-provider, it holds back that one
 * line until `restoreWarnings()` runs; every other warning passes.
 */
const original = console.warn;
console.warn = (...args: unknown[]): void => {
  if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
  original(...args);
};

export function restoreWarnings(): void {
  console.warn = original;
}
