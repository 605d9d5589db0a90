import { createServer } from 'node:net';
import { ServiceError, ServiceErrorCodes } from './errors.ts';

/** Every service here binds loopback only; nothing of ours is reachable from outside. */
export const LOOPBACK = '127.0.0.1';

export function checkPort(service: string, label: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new ServiceError(ServiceErrorCodes.BAD_CONFIG, `${service}: ${label} must be an integer in 1..65535, got ${String(port)}`, {
      service,
    });
  }
  return port;
}

function tryListen(host: string, port: number): Promise<number | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * Fails fast with PORT_IN_USE when a port is taken, instead of letting the service crash (or,
 * worse, letting the probe talk to whoever holds the port and call that "ready").
 */
export async function assertPortsFree(service: string, ports: Readonly<Record<string, number>>, host = LOOPBACK): Promise<void> {
  for (const [label, port] of Object.entries(ports)) {
    checkPort(service, label, port);
    const result = await tryListen(host, port);
    if (typeof result !== 'number') {
      const why = result.code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${result.code ?? result.message})`;
      throw new ServiceError(ServiceErrorCodes.PORT_IN_USE, `${service}: ${label} ${host}:${port} ${why}`, { service });
    }
  }
}

/**
 * A port the kernel just handed out as free, for tests that want a private instance. Another
 * process could take it before the service binds it; the service then fails with a clear error,
 * which is rare enough for tests.
 */
export async function findFreePort(host = LOOPBACK): Promise<number> {
  const result = await tryListen(host, 0);
  if (typeof result !== 'number') {
    throw new ServiceError(ServiceErrorCodes.PORT_IN_USE, `no free port on ${host}: ${result.message}`);
  }
  return result;
}
