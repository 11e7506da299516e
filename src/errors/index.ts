/**
 * The error vocabulary every domain module speaks. Transports map `kind` to their own
 * status codes (HTTP 400/404/409…, MQTT error topics), so a domain module never needs
 * to know which protocol asked.
 */

export type ErrorKind =
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'unauthorized'
  | 'forbidden'
  | 'too_large'
  /** A bound was reached (a queue, a rate): retry later; `details.reason` says which. */
  | 'too_many_requests'
  | 'unavailable';

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** Machine-readable detail: which fields were wrong and why. */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export const invalid = (message: string, details?: unknown) => new DomainError('invalid', message, details);
export const notFound = (message: string) => new DomainError('not_found', message);
export const conflict = (message: string, details?: unknown) => new DomainError('conflict', message, details);
