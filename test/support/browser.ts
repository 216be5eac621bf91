import { CookieJar } from 'tough-cookie';
import { request } from 'undici';

export interface Page {
  readonly status: number;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** Every URL visited, redirects included, in order. */
  readonly history: string[];
  /** Every response body seen on the way, for leak checks. */
  readonly bodies: string[];
  readonly setCookies: string[];
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  follow?: boolean;
}

/**
 * A scripted user: a cookie jar plus manual redirect following, so every hop of the login is a
 * real HTTP exchange with real cookies, as in a browser (cookies ignore ports, as browsers do).
 */
export class Browser {
  readonly jar = new CookieJar();

  /**
   * `tlsOrigins` are reached over plain http but behave as if behind a TLS-terminating proxy:
   * requests carry X-Forwarded-Proto: https, and Secure cookies are kept and sent, as a browser would.
   */
  constructor(private readonly opts: { tlsOrigins?: string[]; otherSites?: string[] } = {}) {}

  /**
   * A redirect from one of `otherSites` (the IdP, say) to an origin not in it is a cross-site
   * top-level navigation: browsers withhold SameSite=Strict cookies from it and send Lax ones.
   */
  private crossSite(from: string | undefined, to: string): boolean {
    const sites = this.opts.otherSites;
    if (!sites || from === undefined) return false;
    return sites.includes(new URL(from).origin) !== sites.includes(new URL(to).origin);
  }

  private tls(url: string): boolean {
    return this.opts.tlsOrigins?.includes(new URL(url).origin) ?? false;
  }

  async go(url: string, opts: RequestOptions = {}): Promise<Page> {
    const history: string[] = [];
    const bodies: string[] = [];
    const setCookies: string[] = [];
    let current = url;
    let method = opts.method ?? 'GET';
    let body = opts.body;
    let headers = opts.headers ?? {};
    for (let hop = 0; hop < 20; hop++) {
      history.push(current);
      const tls = this.tls(current);
      // tough-cookie treats loopback as a secure context, so Secure cookies flow as a browser would send them.
      const cookie = await this.jar.getCookieString(
        current,
        this.crossSite(history.at(-2), current) ? { sameSiteContext: 'lax' } : {},
      );
      const res = await request(current, {
        method: method as 'GET',
        headers: {
          ...headers,
          ...(cookie ? { cookie } : {}),
          ...(tls ? { 'x-forwarded-proto': 'https' } : {}),
        },
        body,
      });
      const text = await res.body.text();
      bodies.push(text);
      const raw = res.headers['set-cookie'];
      for (const c of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
        setCookies.push(c);
        await this.jar.setCookie(c, current, { ignoreError: true });
      }
      const location = res.headers.location;
      if (
        opts.follow === false ||
        res.statusCode < 300 ||
        res.statusCode >= 400 ||
        typeof location !== 'string'
      ) {
        return {
          status: res.statusCode,
          url: current,
          headers: res.headers,
          text,
          history,
          bodies,
          setCookies,
        };
      }
      current = new URL(location, current).href;
      method = 'GET';
      body = undefined;
      headers = {};
    }
    throw new Error('too many redirects');
  }

  async submitForm(
    pageUrl: string,
    html: string,
    formMatch: RegExp,
    fields: Record<string, string>,
  ): Promise<Page> {
    const form = formMatch.exec(html);
    if (!form) throw new Error(`form not found on ${pageUrl}:\n${html.slice(0, 500)}`);
    const action = /action="([^"]+)"/.exec(form[0])![1]!;
    const hidden: Record<string, string> = {};
    for (const m of form[0].matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g))
      hidden[m[1]!] = m[2]!;
    return this.go(new URL(action.replace(/&amp;/g, '&'), pageUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...hidden, ...fields }).toString(),
    });
  }

  /** Submits the IdP's sign-in form shown on `page`. */
  async signIn(page: Page, username = 'alice', password = 'wonderland'): Promise<Page> {
    return this.submitForm(page.url, page.text, /<form[^>]*\/login"[\s\S]*?<\/form>/, { username, password });
  }

  /** Signs in and consents on the IdP's pages, starting from whatever page the authorize redirect showed. */
  async finishAtIdp(start: Page, username = 'alice', password = 'wonderland'): Promise<Page> {
    let page = start;
    const history = [...page.history];
    const bodies = [...page.bodies];
    for (let step = 0; step < 4; step++) {
      if (page.text.includes('name="password"')) {
        page = await this.signIn(page, username, password);
      } else if (page.text.includes('/confirm"')) {
        page = await this.submitForm(page.url, page.text, /<form[^>]*\/confirm"[\s\S]*?<\/form>/, {});
      } else {
        break;
      }
      history.push(...page.history);
      bodies.push(...page.bodies);
    }
    return { ...page, history, bodies };
  }

  /** Logs in through the BFF as a person would: start, sign in at the IdP, consent, land back on returnTo. */
  async login(
    bffUrl: string,
    opts: { returnTo?: string; username?: string; password?: string } = {},
  ): Promise<Page> {
    const start = `${bffUrl}/bff/login${opts.returnTo ? `?returnTo=${encodeURIComponent(opts.returnTo)}` : ''}`;
    return this.finishAtIdp(await this.go(start), opts.username, opts.password);
  }

  /**
   * Signs in and consents at the IdP for a login already started (`start` is coatcheck's unfollowed
   * redirect to the IdP) and stops at the IdP's redirect back to `bffUrl`'s callback, returning that
   * URL unvisited, so a test can replay it, delay it or take it to another browser.
   */
  async callbackUrl(start: Page, bffUrl: string): Promise<string> {
    let at = await this.untilCallback(String(start.headers.location), bffUrl);
    for (let step = 0; step < 4 && typeof at !== 'string'; step++) {
      const page: Page = at;
      if (/<form[^>]*\/login"[\s\S]*?<\/form>/.test(page.text)) {
        at = await this.signIn(page);
        continue;
      }
      const confirm = /<form[^>]*\/confirm"[\s\S]*?<\/form>/.exec(page.text);
      if (!confirm) break;
      at = await this.untilCallback(
        new URL(/action="([^"]+)"/.exec(confirm[0])![1]!, page.url).href,
        bffUrl,
        {
          method: 'POST',
        },
      );
    }
    if (typeof at !== 'string') throw new Error('no callback redirect');
    return at;
  }

  /** Follows redirects until the one back to coatcheck's callback, which is returned and not followed. */
  private async untilCallback(
    url: string,
    bffUrl: string,
    init: { method?: string } = {},
  ): Promise<Page | string> {
    let hop = await this.go(url, { ...init, follow: false });
    while (hop.status >= 300 && hop.status < 400) {
      const next = new URL(String(hop.headers.location), hop.url).href;
      if (next.startsWith(`${bffUrl}/bff/callback`)) return next;
      hop = await this.go(next, { follow: false });
    }
    return hop;
  }
}
