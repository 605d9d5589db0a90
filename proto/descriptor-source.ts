import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The TypeScript source of client-descriptor.ts for the current client.proto. @internal */
export function descriptorSource(): string {
  const text = readFileSync(fileURLToPath(new URL('./client.proto', import.meta.url)), 'utf8');
  const root = protobuf.parse(text, { keepCase: true }).root;
  const json = JSON.stringify(root.toJSON(), null, 2);
  return `// Generated from client.proto by \`npm run proto\`. Do not edit.\nexport const clientDescriptor = ${json} as const;\n`;
}
