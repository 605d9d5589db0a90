/**
 * Talks to a server started with --inspect=127.0.0.1:0 over the Chrome DevTools Protocol, from
 * outside and without changing the server: forces a full garbage collection before memory is
 * read (so RSS measures what sessions hold, not garbage V8 has not collected yet) and reads the
 * JS heap. Loopback only.
 */
import WebSocket from 'ws';

export interface HeapUsage {
  readonly usedBytes: number;
  readonly totalBytes: number;
}

function call(ws: WebSocket, id: number, method: string, params: object = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`inspector ${method} timed out`)), 30_000);
    const onMessage = (data: Buffer): void => {
      const m = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (m.id !== id) return;
      clearTimeout(timer);
      ws.off('message', onMessage);
      if (m.error) reject(new Error(`inspector ${method}: ${m.error.message}`));
      else resolve(m.result ?? {});
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method, params }));
  });
}

/** Full GC in the server's main isolate (twice: the second frees what finalizers released), then its heap. */
export async function collectGarbage(url: string): Promise<HeapUsage> {
  if (!/^ws:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(url)) throw new Error(`not a loopback inspector URL: ${url}`);
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  try {
    await call(ws, 1, 'HeapProfiler.collectGarbage');
    await call(ws, 2, 'HeapProfiler.collectGarbage');
    const usage = await call(ws, 3, 'Runtime.getHeapUsage');
    return { usedBytes: Number(usage.usedSize ?? 0), totalBytes: Number(usage.totalSize ?? 0) };
  } finally {
    ws.close();
  }
}

/**
 * Starts the V8 CPU profiler in a server (over its inspector) and returns a function that stops
 * it and resolves with the profile (.cpuprofile JSON). The socket stays open in between.
 */
export async function startCpuProfile(url: string, samplingIntervalUs = 1000): Promise<() => Promise<unknown>> {
  if (!/^ws:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(url)) throw new Error(`not a loopback inspector URL: ${url}`);
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000, maxPayload: 1 << 30 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await call(ws, 1, 'Profiler.enable');
  await call(ws, 2, 'Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  await call(ws, 3, 'Profiler.start');
  return async () => {
    try {
      return (await call(ws, 4, 'Profiler.stop')).profile;
    } finally {
      ws.close();
    }
  };
}

/** The inspector URL from a line like "Debugger listening on ws://127.0.0.1:40123/<uuid>". */
export function inspectorUrlIn(text: string): string | undefined {
  return /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+)/.exec(text)?.[1];
}
