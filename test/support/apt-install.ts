/**
 * A separate process that installs Debian packages through the project's install path
 * (`aptInstall`, with `--reinstall` so that every run really unpacks them): test/services-apt
 * starts several at once. Usage: node --import tsx test/support/apt-install.ts PKG...
 */
import { aptInstall } from '../../services/install.ts';

try {
  await aptInstall('apt-install-test', process.argv.slice(2), { reinstall: true });
  process.stdout.write('installed\n');
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
