import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { transform } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exploreHandlers } from '../../../src/runtime/index.js';

/**
 * A user's project compiled the way tsx or esbuild compile it: once with
 * `experimentalDecorators` (legacy decorators, what Concordat needs) and once
 * without (TC39 standard decorators, TypeScript's default). The compiled
 * module is written to a file and imported, so the decorators run exactly as
 * they would in that project.
 */
const SRC = resolve(import.meta.dirname, '../../../src/index.ts');

const SOURCES: Record<string, { decorator: string; source: string }> = {
  service: {
    decorator: '@OnMessage',
    source: `
      @Service('greeter')
      export class Subject {
        @OnMessage('greetings.sent')
        async greet(_ctx: unknown): Promise<void> {}
      }`,
  },
  tcc: {
    decorator: '@Try',
    source: `
      @Service('rooms')
      @TccParticipant('rooms.reserve')
      export class Subject {
        @Try() async reserve(_ctx: unknown): Promise<void> {}
        @Confirm() async confirm(_ctx: unknown): Promise<void> {}
        @Cancel() async cancel(_ctx: unknown): Promise<void> {}
      }`,
  },
  saga: {
    decorator: '@Step',
    source: `
      @Service('cards')
      @SagaParticipant('cards.charge')
      export class Subject {
        @Step() async charge(_ctx: unknown): Promise<void> {}
        @Compensate() async refund(_ctx: unknown): Promise<void> {}
      }`,
  },
  twoPhase: {
    decorator: '@Prepare',
    source: `
      @Service('ledger')
      @XaParticipant('ledger.post')
      export class Subject {
        @Prepare() async post(_ctx: unknown): Promise<void> {}
      }`,
  },
  classOnly: {
    decorator: '@Service',
    source: `
      @Service('quiet')
      export class Subject {}`,
  },
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-decorators-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function compileAndImport(name: string, legacy: boolean): Promise<{ Subject: Function }> {
  const header = `import { Service, OnMessage, TccParticipant, Try, Confirm, Cancel, SagaParticipant, Step, Compensate, XaParticipant, Prepare } from ${JSON.stringify(SRC)};\n`;
  const { code } = await transform(header + SOURCES[name]!.source, {
    loader: 'ts',
    format: 'esm',
    target: 'es2022',
    tsconfigRaw: legacy ? { compilerOptions: { experimentalDecorators: true, emitDecoratorMetadata: true } } : { compilerOptions: {} },
  });
  const file = join(dir, `${name}-${legacy ? 'legacy' : 'standard'}.mjs`);
  await writeFile(file, code);
  return import(pathToFileURL(file).href);
}

describe('decorators compiled as TC39 standard decorators', () => {
  for (const [name, { decorator }] of Object.entries(SOURCES)) {
    it(`${name}: ${decorator} throws CONFIG_INVALID naming the two tsconfig settings`, async () => {
      const error = await compileAndImport(name, false).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toMatchObject({ name: 'ConcordatError', code: 'CONFIG_INVALID', context: { decorator } });
      const message = (error as Error).message;
      expect(message).toContain(`${decorator} on `);
      expect(message).toContain('was compiled as a TC39 standard decorator');
      expect(message).toContain('"experimentalDecorators": true');
      expect(message).toContain('"emitDecoratorMetadata": true');
    });
  }
});

describe('decorators compiled as legacy decorators', () => {
  it('a service and its participants record their handlers and pass the start-up checks', async () => {
    const subjects: Function[] = [];
    for (const name of ['service', 'tcc', 'saga', 'twoPhase']) subjects.push((await compileAndImport(name, true)).Subject);
    const table = exploreHandlers(subjects);
    const topics = table.consumers.flatMap((consumer) => [...consumer.handlers.keys()]).sort();
    expect(topics).toEqual([
      'concordat.saga.cards.charge',
      'concordat.tcc.rooms.reserve',
      'concordat.xa-decisions.ledger.post',
      'concordat.xa.ledger.post',
      'greetings.sent',
    ]);
  });
});
