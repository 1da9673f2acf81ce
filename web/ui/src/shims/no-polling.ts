// @replit/crosis falls back to engine.io long polling only when it is given
// a polling host, which this page never does. This stands in for
// engine.io-client so that its transport code (and its Node fallbacks) stay
// out of the bundle.
export default function pollingUnavailable(): never {
  throw new Error('long-polling transport is not available');
}
