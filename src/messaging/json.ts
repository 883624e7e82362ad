/**
 * Compile-time checks that a payload survives JSON: message data is
 * serialized with `JSON.stringify` (application/json), where a `Map` or a
 * `Set` silently becomes `{}`, a `Date` a string, a function or `undefined`
 * in an array `null`, and a `bigint` throws. {@link JsonSafe} turns each of
 * these into `never`, so the call that would lose data does not compile.
 *
 * @module
 */

/** A JSON primitive. */
export type JsonPrimitive = string | number | boolean | null;

/**
 * Any JSON value. For reading untyped data; to accept a payload of your own
 * interface type (interfaces have no index signature, so they are not
 * assignable to this), functions take `T` checked by {@link JsonSafe}.
 */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue | undefined };

/** Types that `JSON.stringify` drops, changes or refuses. */
type NotJson =
  | bigint
  | symbol
  | Function
  | Date
  | RegExp
  | Map<unknown, unknown>
  | ReadonlyMap<unknown, unknown>
  | Set<unknown>
  | ReadonlySet<unknown>
  | WeakMap<WeakKey, unknown>
  | WeakSet<WeakKey>
  | Promise<unknown>
  | ArrayBuffer
  | ArrayBufferView;

/**
 * `T` itself where every part of it is JSON, `never` at each part that is
 * not (a Map, Set, Date, RegExp, function, bigint, symbol, binary buffer, a
 * class instance's methods, or an array that may hold `undefined`). Plain
 * interfaces and type aliases of JSON fields are accepted as they are;
 * optional properties are fine (`JSON.stringify` leaves out an undefined
 * property). `unknown` and `any` cannot be checked and pass.
 *
 * Used as `data: T & JsonSafe<T>`: the argument then fails to compile at the
 * offending property ("Type 'Map<string, number>' is not assignable to type
 * 'never'").
 */
export type JsonSafe<T> = unknown extends T
  ? T
  : T extends JsonPrimitive | undefined
    ? T
    : T extends NotJson
      ? never
      : T extends readonly unknown[]
        ? unknown extends T[number]
          ? T
          : undefined extends T[number]
            ? never
            : { [K in keyof T]: JsonSafe<T[K]> }
        : T extends object
          ? { [K in keyof T]: JsonSafe<T[K]> }
          : never;
