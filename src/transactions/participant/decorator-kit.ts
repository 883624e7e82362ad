import { defineDecoratorCheck, getServiceMetadata, ownMetadata } from '../../runtime/index.js';

/** What a participant decorator kit is told about its mode. */
export interface ParticipantKitSpec<Role extends string> {
  /** The mode as the start-up errors name it: `TCC`, `saga`, `2PC`. */
  readonly label: string;
  /** The class decorator, as the start-up errors name it: `@TccParticipant`. */
  readonly classDecorator: string;
  /** The method roles, each marked by its own decorator, each required once (`try`, `confirm`, `cancel`). */
  readonly roles: readonly Role[];
  /** The decorator that marks a role, as the errors name it: `try` → `@Try`. */
  readonly decoratorOf: (role: Role) => string;
  /** A mode's own rule on the participant's name (2PC: it must fit a gid); returns the problem, or undefined. */
  readonly checkName?: (name: string) => string | undefined;
}

/**
 * What the saga, TCC and 2PC participant decorators share: the participant's
 * name on its class, the methods marked by role (`@Try`, `@Step`,
 * `@Prepare`, …), and one start-up check per class (run by the explorer)
 * that refuses a missing class decorator, a missing or doubled role, and a
 * missing `@Service`, naming the participant and the decorators to add.
 *
 * Metadata lives on the class itself (reflect-metadata's own metadata, under
 * symbols `concordat.<mode>.participant|methods|duplicates`), so a subclass
 * declares its own participant.
 */
export class ParticipantDecoratorKit<Role extends string> {
  private readonly nameKey: symbol;
  private readonly methodsKey: symbol;
  private readonly duplicatesKey: symbol;
  private readonly checked = new WeakSet<Function>();

  /** @param mode the metadata namespace: `tcc`, `saga`, `xa` */
  constructor(
    mode: string,
    private readonly spec: ParticipantKitSpec<Role>,
  ) {
    this.nameKey = Symbol.for(`concordat.${mode}.participant`);
    this.methodsKey = Symbol.for(`concordat.${mode}.methods`);
    this.duplicatesKey = Symbol.for(`concordat.${mode}.duplicates`);
  }

  /** Records the participant's name on its class (the class decorator calls this) and registers the check. */
  declareParticipant(target: Function, name: string): void {
    Reflect.defineMetadata(this.nameKey, name, target);
    this.registerCheck(target);
  }

  /** Records `methodName` as the class's method for `role`; a second, different method for a role is reported at start-up. */
  recordMethod(target: Function, role: Role, methodName: string): void {
    const methods = this.methods(target);
    const previous = methods[role];
    if (previous !== undefined && previous !== methodName) {
      const duplicates = ownMetadata<string[]>(this.duplicatesKey, target) ?? [];
      Reflect.defineMetadata(this.duplicatesKey, [...duplicates, `${previous} and ${methodName} are both ${this.spec.decoratorOf(role)}`], target);
    }
    Reflect.defineMetadata(this.methodsKey, { ...methods, [role]: methodName }, target);
    this.registerCheck(target);
  }

  /** The class's method names by role (the first one marked, for a doubled role; the check refuses those at start-up). */
  methods(target: Function): Partial<Record<Role, string>> {
    return ownMetadata<Partial<Record<Role, string>>>(this.methodsKey, target) ?? {};
  }

  /** The start-up check: the first problem found, or undefined. Exposed for the kit's users' own checks and for tests. */
  problemOf(cls: Function): string | undefined {
    const { label, classDecorator, roles, decoratorOf, checkName } = this.spec;
    const name = ownMetadata<string>(this.nameKey, cls);
    if (name === undefined) return `${roles.map(decoratorOf).join('/')} need${roles.length === 1 ? 's' : ''} ${classDecorator}('<name>') on the class`;
    const nameProblem = checkName?.(name);
    if (nameProblem !== undefined) return `${label} participant '${name}': ${nameProblem}`;
    const methods = this.methods(cls);
    const missing = roles.filter((role) => methods[role] === undefined);
    if (missing.length > 0) return `${label} participant '${name}' lacks ${missing.map(decoratorOf).join(', ')}`;
    const duplicates = ownMetadata<string[]>(this.duplicatesKey, cls) ?? [];
    if (duplicates.length > 0) return `${label} participant '${name}': ${duplicates.join('; ')}`;
    if (getServiceMetadata(cls) === undefined) return `${label} participant '${name}' needs @Service('<name>') on the class`;
    return undefined;
  }

  private registerCheck(target: Function): void {
    if (this.checked.has(target)) return;
    this.checked.add(target);
    defineDecoratorCheck(target, (cls) => this.problemOf(cls));
  }
}
