import { InvalidArgumentError } from 'commander';

/** Commander parser for counts, rates and durations given on the command line. */
export function positive(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('must be a positive number');
  return value;
}
