/**
 * Lists the exported declarations under `src/` that have no JSDoc attached
 * (issue 11, "Docs attach to the wrong symbols"), and prints counts.
 *
 *   npx tsx scripts/check-docs.ts [--list] [--public] [--members] [srcDir]
 *
 * Parses each file with the TypeScript compiler API (no type checking, no
 * Program: a second on this tree). "Attached" means what TypeScript itself
 * shows on hover: the *last* `/** ... *\/` block directly before the
 * declaration (TypeScript ignores the earlier ones but for `@overload`). A
 * block tagged `@module` is a file header and does not count as the doc of
 * the declaration under it.
 *
 * Counted as exported declarations: top-level classes, functions,
 * interfaces, type aliases, enums and each name of a variable statement
 * marked `export` (or `export default`), and local declarations exported
 * through `export { name }`. Re-exports (`export ... from`) are not
 * declarations and are not counted; `--public` follows them from
 * `src/index.ts` to mark which undocumented declarations are public API.
 * A name counts once, documented when any of its declarations is: overloads,
 * merged interfaces, and an `as const` object with the type derived from it
 * (TypeScript shows the docs of all of a symbol's declarations).
 *
 * Options:
 *   --list     print every undocumented declaration (file:line kind name)
 *   --public   only those reachable from src/index.ts
 *   --members  also count the public methods and getters of exported classes
 *              without a doc, their own or one inherited from an interface or
 *              class they implement or extend (looked up by name in src/;
 *              types from packages are not looked into). Constructors are
 *              not counted: the class's doc and the parameters' say it.
 *
 * Prints also the files whose first declaration carries a long doc (8
 * lines or more) that does not name it in its first lines, the usual sign
 * of a file comment TypeScript gives to the first type of the file; those
 * where an exported class of the file has no doc are listed always (the
 * comment almost surely describes it), the others with --list, to review.
 *
 * Not part of `npm test`; the exit code is 0 whatever the counts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

interface Decl {
  file: string;
  line: number;
  kind: string;
  name: string;
  documented: boolean;
}

interface FileInfo {
  decls: Decl[];
  /** Exported name → the declaration's name in this file, or a file and name it re-exports. */
  exports: Map<string, { local: string } | { from: string; name: string }>;
  /** `export * from` targets. */
  star: string[];
  /** The first declaration carries a long doc that does not name it (a possible file comment). */
  suspect?: string;
  /** ...and an exported class of the same file has no doc: almost surely the class the comment describes. */
  misplaced?: string;
  /** Public methods and getters of exported classes; `bases` are the names the class implements or extends. */
  members: { where: string; member: string; bases: string[]; documented: boolean }[];
}

/** Class and interface members by type name, and whether each has a doc (merged over declarations of one name). */
const typeMembers = new Map<string, Map<string, boolean>>();
/** What each class or interface extends or implements, by name. */
const typeBases = new Map<string, string[]>();

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(name);
const srcDir = resolve(args.find((a) => !a.startsWith('--')) ?? 'src');

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

/** The last JSDoc block TypeScript attaches to a node, if any. */
function lastJsDoc(node: ts.Node): ts.JSDoc | undefined {
  const docs = (node as { jsDoc?: ts.JSDoc[] }).jsDoc;
  return docs && docs.length > 0 ? docs[docs.length - 1] : undefined;
}

function isModuleHeader(doc: ts.JSDoc): boolean {
  return (doc.tags ?? []).some((t) => t.tagName.text === 'module' || t.tagName.text === 'packageDocumentation');
}

function hasDoc(node: ts.Node): boolean {
  const doc = lastJsDoc(node);
  return doc !== undefined && !isModuleHeader(doc);
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind);
}

const KINDS: Partial<Record<ts.SyntaxKind, string>> = {
  [ts.SyntaxKind.ClassDeclaration]: 'class',
  [ts.SyntaxKind.FunctionDeclaration]: 'function',
  [ts.SyntaxKind.InterfaceDeclaration]: 'interface',
  [ts.SyntaxKind.TypeAliasDeclaration]: 'type',
  [ts.SyntaxKind.EnumDeclaration]: 'enum',
  [ts.SyntaxKind.ModuleDeclaration]: 'namespace',
};

function resolveModule(fromFile: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(fromFile), spec.replace(/\.js$/, ''));
  for (const candidate of [`${base}.ts`, join(base, 'index.ts')]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

function analyse(path: string): FileInfo {
  const text = readFileSync(path, 'utf8');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const info: FileInfo = { decls: [], exports: new Map(), star: [], members: [] };
  const rel = relative(process.cwd(), path);
  const lineOf = (node: ts.Node): number => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  // Local declarations by name (exported or not), for `export { name }` lists.
  const locals = new Map<string, { node: ts.Node; kind: string }[]>();
  const exportedLocal = new Set<string>();
  let first: ts.Statement | undefined;

  for (const stmt of sf.statements) {
    if (!first && !ts.isImportDeclaration(stmt) && !ts.isImportEqualsDeclaration(stmt) && !ts.isExportDeclaration(stmt) && !ts.isExpressionStatement(stmt)) {
      first = stmt;
    }
    if (ts.isExportDeclaration(stmt)) {
      const spec = stmt.moduleSpecifier && ts.isStringLiteral(stmt.moduleSpecifier) ? stmt.moduleSpecifier.text : undefined;
      const target = spec ? resolveModule(path, spec) : undefined;
      if (!stmt.exportClause) {
        if (target) info.star.push(target);
        continue;
      }
      if (ts.isNamedExports(stmt.exportClause)) {
        for (const el of stmt.exportClause.elements) {
          const local = (el.propertyName ?? el.name).text;
          if (target) info.exports.set(el.name.text, { from: target, name: local });
          else if (!spec) {
            info.exports.set(el.name.text, { local });
            exportedLocal.add(local);
          }
        }
      }
      continue;
    }
    if (ts.isExportAssignment(stmt)) continue;
    const exported = hasModifier(stmt, ts.SyntaxKind.ExportKeyword);
    if (ts.isVariableStatement(stmt)) {
      for (const d of stmt.declarationList.declarations) {
        if (!ts.isIdentifier(d.name)) continue;
        const entry = { node: stmt as ts.Node, kind: stmt.declarationList.flags & ts.NodeFlags.Const ? 'const' : 'let' };
        locals.set(d.name.text, [...(locals.get(d.name.text) ?? []), entry]);
        if (exported) {
          exportedLocal.add(d.name.text);
          info.exports.set(d.name.text, { local: d.name.text });
        }
      }
      continue;
    }
    const kind = KINDS[stmt.kind];
    if (!kind) continue;
    const nameNode = (stmt as ts.DeclarationStatement).name;
    const name = nameNode && ts.isIdentifier(nameNode) ? nameNode.text : 'default';
    locals.set(name, [...(locals.get(name) ?? []), { node: stmt, kind }]);
    if (exported) {
      exportedLocal.add(name);
      info.exports.set(hasModifier(stmt, ts.SyntaxKind.DefaultKeyword) ? 'default' : name, { local: name });
    }
  }

  for (const name of exportedLocal) {
    const entries = locals.get(name);
    if (!entries) continue;
    // One count per name: interfaces merge, functions overload, and an `as const` object and its
    // derived type of the same name are one symbol, whose hover shows the docs of every declaration.
    const kind = [...new Set(entries.map((e) => e.kind))].join('+');
    info.decls.push({ file: rel, line: lineOf(entries[0]!.node), kind, name, documented: entries.some((e) => hasDoc(e.node)) });
    if (flag('--members')) {
      for (const { node } of entries) {
        if (!ts.isClassDeclaration(node)) continue;
        const bases = (node.heritageClauses ?? []).flatMap((clause) => clause.types.map((t) => t.expression.getText(sf).split('.').pop()!));
        for (const m of node.members) {
          const isPublicMethod =
            (ts.isMethodDeclaration(m) || ts.isGetAccessorDeclaration(m)) &&
            !hasModifier(m, ts.SyntaxKind.PrivateKeyword) &&
            !hasModifier(m, ts.SyntaxKind.ProtectedKeyword) &&
            !ts.isPrivateIdentifier(m.name);
          if (!isPublicMethod) continue;
          // An overload's implementation shares the overloads' doc.
          if (
            ts.isMethodDeclaration(m) &&
            m.body &&
            node.members.some((o) => o !== m && ts.isMethodDeclaration(o) && !o.body && o.name.getText(sf) === m.name.getText(sf))
          )
            continue;
          info.members.push({ where: `${rel}:${lineOf(m)} ${name}.${m.name.getText(sf)}`, member: m.name.getText(sf), bases, documented: hasDoc(m) });
        }
      }
    }
  }

  // Every class's and interface's members, by type name, for docs a member inherits from what it implements or extends.
  const visitTypes = (n: ts.Node): void => {
    if ((ts.isClassDeclaration(n) || ts.isInterfaceDeclaration(n)) && n.name) {
      const members = typeMembers.get(n.name.text) ?? new Map<string, boolean>();
      for (const m of n.members) {
        const memberName = m.name && !ts.isComputedPropertyName(m.name) ? m.name.getText(sf) : undefined;
        if (memberName !== undefined) members.set(memberName, (members.get(memberName) ?? false) || hasDoc(m));
      }
      typeMembers.set(n.name.text, members);
      const bases = (n.heritageClauses ?? []).flatMap((clause) => clause.types.map((t) => t.expression.getText(sf).split('.').pop()!));
      typeBases.set(n.name.text, [...(typeBases.get(n.name.text) ?? []), ...bases]);
    }
    ts.forEachChild(n, visitTypes);
  };
  visitTypes(sf);

  if (first && !ts.isClassDeclaration(first)) {
    const doc = lastJsDoc(first);
    const nameNode = (first as ts.DeclarationStatement).name;
    const name =
      nameNode && ts.isIdentifier(nameNode)
        ? nameNode.text
        : ts.isVariableStatement(first)
          ? (first.declarationList.declarations[0]?.name.getText(sf) ?? '')
          : '';
    if (doc && !isModuleHeader(doc)) {
      const lines = doc.getText(sf).split('\n').length;
      const firstLine = doc.getText(sf).split('\n').slice(0, 2).join(' ');
      if (lines >= 8 && name && !firstLine.includes(name)) {
        info.suspect = `${rel}:${lineOf(first)} ${name} (${lines}-line doc)`;
        const orphan = info.decls.find((d) => d.kind.split('+').includes('class') && !d.documented);
        if (orphan !== undefined) info.misplaced = `${info.suspect}; class ${orphan.name} (line ${orphan.line}) has none`;
      }
    }
  }
  return info;
}

const files = walk(srcDir);
const infos = new Map(files.map((f) => [f, analyse(f)]));

/** Marks the declarations reachable from src/index.ts. */
function publicDecls(): Set<Decl> {
  const out = new Set<Decl>();
  const seen = new Set<string>();
  const visit = (file: string, name: string): void => {
    const key = `${file}#${name}`;
    if (seen.has(key)) return;
    seen.add(key);
    const info = infos.get(file);
    if (!info) return;
    const exp = info.exports.get(name);
    if (exp && 'local' in exp) {
      for (const d of info.decls) if (d.name === exp.local) out.add(d);
      return;
    }
    if (exp) return visit(exp.from, exp.name);
    for (const target of info.star) visit(target, name);
  };
  const index = join(srcDir, 'index.ts');
  const root = infos.get(index);
  if (!root) return out;
  const names = new Set(root.exports.keys());
  for (const name of names) visit(index, name);
  return out;
}

const all = [...infos.values()].flatMap((i) => i.decls);
const scope = flag('--public') ? publicDecls() : undefined;
const inScope = (d: Decl): boolean => !scope || scope.has(d);
const undocumented = all.filter((d) => inScope(d) && !d.documented);
const classes = all.filter((d) => inScope(d) && d.kind.split('+').includes('class'));
const undocumentedClasses = classes.filter((d) => !d.documented);

if (flag('--list')) {
  for (const d of undocumented) console.log(`${d.file}:${d.line} ${d.kind} ${d.name}`);
  console.log('');
}
const suspects = [...infos.values()].flatMap((i) => (i.suspect ? [i.suspect] : []));
const misplaced = [...infos.values()].flatMap((i) => (i.misplaced ? [i.misplaced] : []));
if (misplaced.length > 0) {
  console.log('file comments on the first declaration while the class of the file has no doc:');
  for (const s of misplaced) console.log(`  ${s}`);
}
if (flag('--list') && suspects.length > 0) {
  console.log('long docs on a first declaration that do not name it (review; most describe it):');
  for (const s of suspects) console.log(`  ${s}`);
}
if (flag('--members')) {
  // TypeScript shows a member without a doc of its own the doc of the member it implements or overrides.
  const inherited = (bases: readonly string[], member: string, seen = new Set<string>()): boolean =>
    bases.some((base) => {
      if (seen.has(base)) return false;
      seen.add(base);
      return typeMembers.get(base)?.get(member) === true || inherited(typeBases.get(base) ?? [], member, seen);
    });
  const members = [...infos.values()].flatMap((i) => i.members);
  const undocumented = members.filter((m) => !m.documented && !inherited(m.bases, m.member));
  if (flag('--list')) for (const m of undocumented) console.log(`  member ${m.where}`);
  console.log(`public methods and getters of exported classes without a doc (own or inherited): ${undocumented.length} of ${members.length}`);
}
console.log(`files: ${files.length}${scope ? ' (public API only: reachable from src/index.ts)' : ''}`);
console.log(`exported declarations without a doc: ${undocumented.length} of ${all.filter(inScope).length}`);
console.log(
  `exported classes without a doc: ${undocumentedClasses.length} of ${classes.length}${undocumentedClasses.length ? ` (${undocumentedClasses.map((d) => d.name).join(', ')})` : ''}`,
);
console.log(`file comments on the first declaration while the file's class has no doc: ${misplaced.length}`);
console.log(`long docs on a first declaration that do not name it (heuristic, --list shows them): ${suspects.length}`);
