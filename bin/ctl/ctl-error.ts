/**
 * parleyctl's failures, each with a stable code and the exit code scripts can trust
 * (README "Operating a cluster"):
 *
 *   0  ok
 *   1  FAILED       the operation was tried and failed (a node answered with an error)
 *   2  USAGE        bad command line (unknown command or option, missing argument, bad value)
 *   3  NOT_FOUND    no such node, user or actor kind in the cluster
 *   4  UNREACHABLE  a node or etcd did not answer (down, wrong address, timed out)
 *   5  REFUSED      a node refused the operator token (signed with another secret)
 */
export const CtlCodes = { FAILED: 'FAILED', USAGE: 'USAGE', NOT_FOUND: 'NOT_FOUND', UNREACHABLE: 'UNREACHABLE', REFUSED: 'REFUSED' } as const;
export type CtlCode = (typeof CtlCodes)[keyof typeof CtlCodes];

export const EXIT_CODES: Readonly<Record<CtlCode, number>> = { FAILED: 1, USAGE: 2, NOT_FOUND: 3, UNREACHABLE: 4, REFUSED: 5 };

export class CtlError extends Error {
  override readonly name = 'CtlError';

  constructor(
    readonly code: CtlCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}
