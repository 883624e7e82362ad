/**
 * Concordat's decorators (and inversify's, and TypeORM's) are TypeScript's
 * *legacy* decorators: they record metadata on the class with
 * `Reflect.defineMetadata`. A project compiled without
 * `experimentalDecorators` (TypeScript's default since 5.0, and tsx or
 * esbuild without that tsconfig) gets TC39 standard decorators instead,
 * which are called with `(value, context)`: a method decorator then sees the
 * method function where it expects the prototype, records its metadata on
 * the wrong object, and the service starts with no consumers. These wrappers
 * recognise the standard call — its second argument is a context object with
 * a `kind` (TC39 proposal-decorators, "Decorator context") — and refuse it at
 * once.
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../../errors.js';

function assertLegacyCall(decorator: string, second: unknown): void {
  if (typeof second !== 'object' || second === null || typeof (second as { kind?: unknown }).kind !== 'string') return;
  const { kind, name } = second as { kind: string; name?: unknown };
  const where = typeof name === 'string' || typeof name === 'symbol' ? ` on ${kind} ${String(name)}` : ` on a ${kind}`;
  throw new ConcordatError(
    `${decorator}${where} was compiled as a TC39 standard decorator, but Concordat's decorators are TypeScript's legacy ` +
      `decorators: set "experimentalDecorators": true and "emitDecoratorMetadata": true in the compilerOptions of your ` +
      `tsconfig.json (and make sure your build tool reads it: tsx reads the tsconfig.json of the directory it runs in, or the ` +
      `one --tsconfig names; esbuild's build API the nearest one above each file, or its tsconfigRaw), then build again. ` +
      `See docs/getting-started.md.`,
    { code: ErrorCode.CONFIG_INVALID, context: { decorator, kind } },
  );
}

/**
 * Wraps a legacy class decorator so that a standard-decorator call throws.
 * @throws ConcordatError CONFIG_INVALID when compiled as a TC39 standard decorator.
 */
export function legacyClassDecorator(decorator: string, apply: (target: Function) => void): ClassDecorator {
  return (target: Function, context?: unknown) => {
    assertLegacyCall(decorator, context);
    apply(target);
  };
}

/**
 * Wraps a legacy method decorator so that a standard-decorator call throws.
 * @throws ConcordatError CONFIG_INVALID when compiled as a TC39 standard decorator.
 */
export function legacyMethodDecorator(decorator: string, apply: (prototype: object, propertyKey: string | symbol) => void): MethodDecorator {
  return (prototype: object, propertyKey: string | symbol | object) => {
    assertLegacyCall(decorator, propertyKey);
    apply(prototype, propertyKey as string | symbol);
  };
}
