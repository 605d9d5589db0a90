/**
 * Node settings: one table (settings.ts) from which the loader, the CLI flags, the PARLEY_*
 * variables and config/REFERENCE.md are derived. Bad values fail at start, naming the setting.
 *
 * @example
 * ```ts
 * const config = loadConfig({ port: '18080' }, process.env); // flags win over env over file
 * ```
 */
export { ConfigError, loadConfig, type Config } from './config.ts';
export { envOf, flagOf, SETTINGS, type Setting } from './settings.ts';
