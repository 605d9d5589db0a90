/**
 * Node.js options parleyd runs with: `npm start` (package.json), the Dockerfile, the bench,
 * bin/cluster-dev.ts and the tests' servers all pass these, so what is measured is what runs.
 *
 * `--max-semi-space-size=64` (MiB; Node's default is 16): a young generation four times larger is
 * scavenged a quarter as often. A scavenge pauses the event loop for 5-7 ms whatever the rate
 * (it copies what is alive, and actors, sockets and in-flight sends are alive), so fewer of them
 * is fewer stalls: one-to-one at 1,000 msg/s, p99 11.4 ms with the default and 6.1 ms with this
 * (bench/README.md). The cost is up to 3 × 48 MiB more of address space, touched only as it fills.
 * V8 reads it when the process starts: it cannot be set from inside.
 */
export const PARLEYD_NODE_ARGS: readonly string[] = ['--max-semi-space-size=64'];
