import type { JsonSafe } from '../../messaging/index.js';

/**
 * The argument type of `beginTcc`, `beginSaga` and `beginTwoPhase`: the
 * caller's options `I` as written, where every payload (and every other
 * field) must survive JSON ({@link JsonSafe}: a `Map`, `Set`, `Date`,
 * function or `bigint` anywhere fails to compile instead of arriving as `{}`
 * or a string), and where a key that `Base` does not have fails to compile
 * (the check an object literal gets against a plain parameter type, which a
 * generic parameter would lose).
 */
export type BeginInput<I, Base> = I & JsonSafe<I> & { [K in Exclude<keyof I, keyof Base>]: never };
