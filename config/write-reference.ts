import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReference } from './reference.ts';

const out = fileURLToPath(new URL('./REFERENCE.md', import.meta.url));
writeFileSync(out, configReference());
console.log(`wrote ${out}`);
