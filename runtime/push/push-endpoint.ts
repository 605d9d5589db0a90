/**
 * Which URLs Parley will POST Web Push messages to. A subscription's endpoint comes from a client,
 * so it is checked when it is registered and again before each send: `https:` only, except
 * `http:` to this machine's loopback when the operator allows it (`--push-allow-insecure`, for
 * tests and a local push service), never plain HTTP across a network.
 */

/** Longest endpoint accepted. Real ones (FCM, Mozilla, Apple, Microsoft) are under 500 characters. */
export const MAX_PUSH_ENDPOINT_LENGTH = 2048;

/** Loopback as the WHATWG URL parser spells hosts: `localhost`, 127.0.0.0/8, `[::1]`. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Why `endpoint` is refused, or undefined when it may be sent to. */
export function endpointProblem(endpoint: string, allowInsecure: boolean): string | undefined {
  if (endpoint.length === 0 || endpoint.length > MAX_PUSH_ENDPOINT_LENGTH) return `endpoint must be 1-${MAX_PUSH_ENDPOINT_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'endpoint must be an absolute URL';
  }
  // Credentials in the URL would be sent to the push service; no real endpoint has them.
  if (url.username !== '' || url.password !== '') return 'endpoint must not carry credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    if (!allowInsecure) return 'endpoint must be https: (http: to loopback only with --push-allow-insecure)';
    return isLoopbackHost(url.hostname) ? undefined : 'an http: endpoint must be on loopback (127.0.0.0/8, ::1, localhost)';
  }
  return 'endpoint must be https:';
}
