// The access token: taken from the address the daemon printed
// (…/#token=<token>), kept in this tab's sessionStorage, and removed from
// the address bar at once, so it is never in history, bookmarks, a Referer
// or a log. It leaves the page only in the websocket address, which is the
// protocol's one credential.

const storageKey = 'conman.token';

/** What the page reads from the token's claims (for display only: the daemon verifies them). */
export interface Identity {
  token: string;
  userId: number;
  userName: string;
  readOnly: boolean;
  /** Expiry in ms since the epoch, or null when the token does not say. */
  expires: number | null;
}

/**
 * takeToken returns the token from the address's fragment (storing it and
 * removing it from the address bar) or, failing that, from sessionStorage.
 */
export function takeToken(loc: Location, storage: Storage, history: History): string | null {
  const fromHash = tokenFromFragment(loc.hash);
  if (fromHash) {
    storage.setItem(storageKey, fromHash);
    history.replaceState(history.state, '', loc.pathname + loc.search);
    return fromHash;
  }
  return storage.getItem(storageKey);
}

/** tokenFromFragment reads token=… from a fragment such as "#token=abc&x=y". */
export function tokenFromFragment(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  return token ? token.trim() : null;
}

/**
 * identityOf reads the claims of a PASETO v2.public token: the payload is
 * the JSON claims followed by a 64-byte Ed25519 signature, base64url
 * encoded. Nothing is verified here; a token the page cannot read still
 * works, as an unnamed read-write user.
 */
export function identityOf(token: string): Identity {
  const fallback: Identity = { token, userId: 0, userName: 'you', readOnly: false, expires: null };
  const parts = token.split('.');
  if (parts.length < 3 || parts[0] !== 'v2' || parts[1] !== 'public') return fallback;
  try {
    const raw = base64urlDecode(parts[2]);
    if (raw.length <= 64) return fallback;
    const claims = JSON.parse(new TextDecoder().decode(raw.subarray(0, raw.length - 64))) as Record<string, unknown>;
    const expires = typeof claims.exp === 'string' ? Date.parse(claims.exp) : NaN;
    return {
      token,
      userId: typeof claims.uid === 'number' ? claims.uid : 0,
      userName: typeof claims.name === 'string' && claims.name ? claims.name : 'you',
      readOnly: claims.perm === 'ro',
      expires: Number.isFinite(expires) ? expires : null,
    };
  } catch {
    return fallback;
  }
}

function base64urlDecode(s: string): Uint8Array {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
