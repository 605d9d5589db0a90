/**
 * Node metrics in Prometheus text form, on prom-client with a registry per node.
 *
 * Guarantees: the hot path pays a plain add (FastCounter) or a bucket scan (FastHistogram), never
 * an allocation; gauges are computed only when scraped; labels are bounded sets (actor kind,
 * store operation, peer node), never an actor key or anything else with an open set of values.
 * The application layer registers its own figures on the same NodeMetrics.
 *
 * @example
 * ```ts
 * const metrics = new NodeMetrics();
 * registerRuntimeMetrics(metrics, { system, connections: () => gateway.connectionCount });
 * const store = instrumentStore(rawStore, metrics);
 * const sent = metrics.counter('app_things_total', 'Things.');
 * sent.add();
 * await metrics.text(); // "# HELP app_things_total Things.\n# TYPE app_things_total counter\n..."
 * ```
 */
export { FastCounter, FastHistogram, HistogramCell, NodeMetrics, type GaugeReading } from './node-metrics.ts';
export { instrumentStore, registerPeerQueueMetrics, registerRuntimeMetrics, STORE_BOUNDS, type RuntimeSources } from './runtime-metrics.ts';
