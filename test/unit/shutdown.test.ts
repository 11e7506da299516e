import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ShutdownDeadlineError, ShutdownSteps } from '../../src/lifecycle/index.js';

describe('shutdown steps with a deadline', () => {
  test('run last added first, each once, and name each step as it starts', async () => {
    const steps = new ShutdownSteps();
    const ran: string[] = [];
    steps.push('database', () => {
      ran.push('database');
    });
    steps.push('listeners', async () => {
      await new Promise((resolve) => setImmediate(resolve));
      ran.push('listeners');
    });
    const started: string[] = [];
    await steps.run(60_000, (name) => started.push(name));
    assert.deepEqual(ran, ['listeners', 'database']);
    assert.deepEqual(started, ['listeners', 'database']);
    await steps.run(60_000);
    assert.deepEqual(ran, ['listeners', 'database'], 'a second run has nothing left to do');
  });

  test('past the deadline it gives up, naming the step it waited for and the ones it did not start', async () => {
    const steps = new ShutdownSteps();
    let databaseClosed = false;
    steps.push('closing the database', () => {
      databaseClosed = true;
    });
    steps.push('telemetry store flush', () => undefined);
    steps.push('edge hub (uplink batches in flight)', () => new Promise<void>(() => {}));
    steps.push('retention sweep', () => undefined);
    const error = await steps.run(100).then(
      () => assert.fail('a step that never settles cannot finish a shutdown'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof ShutdownDeadlineError);
    assert.equal(error.waitingFor, 'edge hub (uplink batches in flight)');
    assert.deepEqual(error.notRun, ['telemetry store flush', 'closing the database']);
    assert.match(
      error.message,
      /still waiting for edge hub \(uplink batches in flight\); not run: telemetry store flush, closing the database/,
    );
    assert.equal(databaseClosed, false);
  });

  test('a failing step stops the run with its own error', async () => {
    const steps = new ShutdownSteps();
    let reached = false;
    steps.push('database', () => {
      reached = true;
    });
    steps.push('bindings', () => Promise.reject(new Error('broker would not close')));
    await assert.rejects(steps.run(60_000), /broker would not close/);
    assert.equal(reached, false);
  });
});
