/** Steps that undo what a test set up (processes, directories, connections). */
export type Cleanup = (() => Promise<void> | void)[];

/** Runs `body` with a cleanup list that is unwound (last first) even when `body` throws. */
export async function withCleanup(body: (cleanup: Cleanup) => Promise<void>): Promise<void> {
  const cleanup: Cleanup = [];
  try {
    await body(cleanup);
  } finally {
    for (const step of cleanup.reverse()) await step();
  }
}
