import uWS from 'uWebSockets.js';
import { CodedError, RuntimeCodes } from '../errors.ts';

/**
 * The uWebSockets.js binding, only if it is the native one. The package silently swaps in a
 * slow `ws`-based imitation when its binary does not load; serving on that would make every
 * number we publish a lie, so we refuse to start instead.
 */
export function nativeUws(): typeof uWS {
  const native = typeof (uWS as unknown as { getParts?: unknown }).getParts === 'function' && 'SHARED_COMPRESSOR' in uWS;
  if (!native || process.env.UWS_USE_FALLBACK) {
    throw new CodedError(
      RuntimeCodes.CONFIG,
      'uWebSockets.js fell back to its JavaScript implementation (native binary not loaded for this Node.js); refusing to start',
    );
  }
  return uWS;
}
