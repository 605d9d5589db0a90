/**
 * A real headless browser for tests: Debian's `chromium`, installed through the project's own
 * apt path (`ensureDebianPackages`, as etcd and redis are) when the machine lacks it. Never a
 * browser build downloaded by Playwright: only the package registries are reachable, so tests
 * drive this system chromium with playwright-core's `executablePath`.
 */
import { ensureDebianPackages, findExecutable } from '../../services/install.ts';
import { ServiceError, ServiceErrorCodes } from '../../services/errors.ts';

const SERVICE = 'chromium';

/** The absolute path of Debian's chromium, installing the package first if it is missing. */
export async function ensureChromium(): Promise<string> {
  await ensureDebianPackages(SERVICE, [{ executable: 'chromium', pkg: 'chromium' }]);
  const path = findExecutable('chromium');
  // ensureDebianPackages throws when the executable is still missing; this guards its contract.
  if (path === undefined) throw new ServiceError(ServiceErrorCodes.INSTALL_FAILED, 'chromium: not on PATH after installing', { service: SERVICE });
  return path;
}
