/**
 * Regenerates client-descriptor.ts from client.proto (`npm run proto`). The descriptor is
 * checked in so the client SDK needs no .proto parser and no file system at run time;
 * test/proto/descriptor.test.ts fails when the two drift apart.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { descriptorSource } from './descriptor-source.ts';

const out = fileURLToPath(new URL('./client-descriptor.ts', import.meta.url));
writeFileSync(out, descriptorSource());
console.log(`wrote ${out}`);
