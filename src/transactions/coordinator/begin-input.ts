import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { JsonSafe } from '../../messaging/index.js';
import type { Participant } from '../participant/definition.js';

/**
 * The argument type of `beginTcc`, `beginSaga` and `beginTwoPhase`: the
 * caller's options `I` as written, where every payload (and every other
 * field) must survive JSON ({@link JsonSafe}: a `Map`, `Set`, `Date`,
 * function or `bigint` anywhere fails to compile instead of arriving as `{}`
 * or a string), where a key that `Base` does not have fails to compile
 * (the check an object literal gets against a plain parameter type, which a
 * generic parameter would lose), and where a branch (or step) whose
 * participant is a definition (`defineParticipant`) must carry a payload of
 * that participant's schema input type.
 */
export type BeginInput<I, Base> = I & JsonSafe<WithoutDefinitions<I>> & { [K in Exclude<keyof I, keyof Base>]: never } & PayloadsChecked<I>;

type BranchField = 'branches' | 'steps';

/** `I` with the participant definitions of its branches left unchecked (they are not sent; their names are). */
type WithoutDefinitions<I> = { [K in keyof I]: K extends BranchField ? ListWithoutDefinitions<I[K]> : I[K] };
type ListWithoutDefinitions<L> = L extends readonly (infer B)[] ? Array<{ [F in keyof B]: F extends 'participant' ? unknown : B[F] }> : L;

/** Each branch of `I` paired with its own participant's payload type: a typed participant's branch must match it; a named one is as before. */
type PayloadsChecked<I> = { [K in keyof I]: K extends BranchField ? CheckedList<I[K]> : unknown };
type CheckedList<L> = L extends readonly (infer B)[] ? ReadonlyArray<CheckedBranch<B>> : unknown;
type CheckedBranch<B> = B extends { participant: Participant<infer S> } ? Omit<B, 'payload'> & { payload: StandardSchemaV1.InferInput<S> } : B;
