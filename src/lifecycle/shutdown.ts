export type ShutdownStep = () => Promise<void> | void;

/** Shutdown gave up waiting: `waitingFor` was still running, `notRun` never started. */
export class ShutdownDeadlineError extends Error {
  constructor(
    readonly deadlineMs: number,
    readonly waitingFor: string,
    readonly notRun: readonly string[],
  ) {
    super(
      `shutdown did not finish within ${deadlineMs} ms: still waiting for ${waitingFor}` +
        (notRun.length > 0 ? `; not run: ${notRun.join(', ')}` : ''),
    );
    this.name = 'ShutdownDeadlineError';
  }
}

/**
 * The undo steps of a start-up, in the order the parts started. `run` undoes them last first,
 * so a part stops before the parts it uses (listeners before the store they write to).
 */
export class ShutdownSteps {
  private readonly steps: { name: string; run: ShutdownStep }[] = [];

  /** `name` says what the step waits for, as an operator reads it in the log. */
  push(name: string, step: ShutdownStep): void {
    this.steps.push({ name, run: step });
  }

  /**
   * Runs every step once, last pushed first. A step that fails stops the run with its error (as
   * it did before there was a deadline). Once `deadlineMs` has passed with a step still running,
   * rejects with {@link ShutdownDeadlineError}: the step keeps its promise, the ones after it are
   * not started (a process exits next; its committed data is safe in the store's journal).
   */
  async run(deadlineMs: number, started?: (name: string) => void): Promise<void> {
    const pending = this.steps.splice(0).reverse();
    let current: string | undefined;
    let gaveUp = false;
    const work = (async () => {
      while (pending.length > 0 && !gaveUp) {
        const step = pending.shift() as (typeof pending)[number];
        current = step.name;
        started?.(step.name);
        await step.run();
      }
      current = undefined;
    })();
    let timer: NodeJS.Timeout | undefined;
    // Kept referenced: when a hung step holds nothing the event loop waits on, the deadline still fires.
    const overdue = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        gaveUp = true;
        reject(
          new ShutdownDeadlineError(
            deadlineMs,
            current ?? 'nothing',
            pending.map((step) => step.name),
          ),
        );
      }, deadlineMs);
    });
    try {
      await Promise.race([work, overdue]);
    } finally {
      clearTimeout(timer);
      // A step that fails after the deadline has nobody left to hear it.
      work.catch(() => undefined);
    }
  }
}
