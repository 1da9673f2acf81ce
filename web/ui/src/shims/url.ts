// The two functions of Node's `url` module that @replit/crosis calls to turn
// the connection metadata into a websocket address: parse an address, set
// its path, format it again. The browser's URL does both.

/** A parsed address whose path may be changed before it is formatted. */
export interface ParsedURL {
  href: string;
  protocol: string;
  host: string;
  hostname: string;
  port: string;
  pathname: string;
  search: string;
  hash: string;
}

export function parse(address: string): ParsedURL {
  const u = new URL(address);
  return {
    href: u.href,
    protocol: u.protocol,
    host: u.host,
    hostname: u.hostname,
    port: u.port,
    pathname: u.pathname,
    search: u.search,
    hash: u.hash,
  };
}

export function format(parsed: ParsedURL): string {
  // The path is taken as it is: crosis puts the token there unencoded, and
  // tokens are made of URL-safe characters.
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search}${parsed.hash}`;
}

export default { parse, format };
