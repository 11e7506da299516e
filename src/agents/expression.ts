import { compileExpression, useDotAccessOperatorAndOptionalChaining } from 'filtrex';

/**
 * Agent expressions (`bearingTemperature > 80 and not maintenance`,
 * `clamp(reported.speed * 0.9, 30, 100)`) in filtrex, a small, safe end-user language: no
 * access to JavaScript globals, dots read nested values, and a missing value is null rather
 * than an exception, so one absent reading never crashes an evaluation.
 */

export type Scope = Record<string, unknown>;

export interface Expression {
  source: string;
  evaluate(scope: Scope): unknown;
}

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

const FUNCTIONS = {
  clamp,
  abs: Math.abs,
  min: Math.min,
  max: Math.max,
  round: (value: number, digits = 0) => Number(value.toFixed(digits)),
};

/**
 * filtrex has no boolean literals: without these, `true` would be read as a (missing) property
 * and `attributes.maintenance == true` would hold whenever the attribute is absent.
 */
const CONSTANTS = { true: true, false: false, null: null };

export class ExpressionError extends Error {}

export function compile(source: string): Expression {
  let fn: (scope: Scope) => unknown;
  try {
    fn = compileExpression(source, {
      extraFunctions: FUNCTIONS,
      constants: CONSTANTS,
      customProp: useDotAccessOperatorAndOptionalChaining,
    });
  } catch (error) {
    throw new ExpressionError(`"${source}" is not a valid expression: ${(error as Error).message.split('\n').slice(-1)[0]}`);
  }
  return {
    source,
    evaluate(scope) {
      const result = fn(scope);
      // filtrex returns run-time errors instead of throwing them.
      return result instanceof Error ? undefined : result;
    },
  };
}

/** True only for a real `true`: a missing reading never satisfies a condition. */
export function holds(expression: Expression, scope: Scope): boolean {
  return expression.evaluate(scope) === true;
}

/** A finite number, or undefined when data is missing or the arithmetic failed. */
export function numberOf(expression: Expression, scope: Scope): number | undefined {
  const value = expression.evaluate(scope);
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
