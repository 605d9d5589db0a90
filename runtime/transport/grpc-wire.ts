/**
 * The gRPC method both ends of an inter-node link agree on, with the hand-written codec plugged
 * in as (de)serializer so grpc-js hands us decoded envelope arrays directly.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeBatch, encodeBatch } from './envelope-codec.ts';
import type { Envelope } from './transport.ts';

export const CONNECT_PATH = '/parley.cluster.ClusterTransport/Connect';

/** Sent by the server in its response headers once it accepted a stream. */
export const ACCEPTED_HEADER = 'x-parley-accepted';

export type Batch = Envelope[];

export const connectMethod: grpc.MethodDefinition<Batch, Batch> = {
  path: CONNECT_PATH,
  requestStream: true,
  responseStream: true,
  requestSerialize: encodeBatch,
  requestDeserialize: decodeBatch,
  responseSerialize: encodeBatch,
  responseDeserialize: decodeBatch,
};

export const clusterTransportService: grpc.ServiceDefinition = { Connect: connectMethod };

/**
 * Detects a dead peer whose TCP connection did not close (power loss, partition) within about
 * 15 s instead of the OS's many minutes.
 */
export const KEEPALIVE_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** Batches are bounded far below this; it only stops a single huge envelope from being refused. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
