import { envOf, flagOf, SETTINGS, type Setting } from './settings.ts';

/** The config reference in Markdown, generated from SETTINGS. @internal */
export function configReference(): string {
  const rows = (SETTINGS as readonly Setting[]).map((s) => {
    const def = s.default === undefined ? '(none)' : `\`${String(s.default)}\``;
    const type = s.type === 'enum' ? s.values!.join(' \\| ') : s.type;
    return `| \`${s.key}\` | \`${flagOf(s.key)}\` | \`${envOf(s.key)}\` | ${type} | ${def} | ${s.doc} |`;
  });
  return [
    '# Configuration reference',
    '',
    'Generated from `config/settings.ts` by `npm run config:doc`; a test fails when it is stale.',
    '',
    'Every setting can be given three ways, later ones winning: a JSON config file (`--config FILE` or `PARLEY_CONFIG`, keys as below),',
    'an environment variable, or a flag. Bad values stop the node at start with the setting named in the message.',
    '',
    '| key | flag | environment | type | default | meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
