/**
 * Orderly shutdown with a deadline. The parts a node starts register a named step to undo
 * themselves; shutdown runs them in reverse, one at a time, waits for the work in flight, but
 * never forever: past the deadline it stops waiting and says which steps it was waiting for.
 */
export { ShutdownDeadlineError, type ShutdownStep, ShutdownSteps } from './shutdown.js';
