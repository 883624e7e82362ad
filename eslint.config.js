// ESLint flat config: typescript-eslint's type-checked recommendations on the
// sources, and docs required on exported declarations (issue 11).
import js from '@eslint/js';
import jsdoc from 'eslint-plugin-jsdoc';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'bench/peers/node_modules/', '.concordat/', 'coverage/'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { jsdoc },
    rules: {
      // Class constructors are Reflect metadata targets, inversify service identifiers and what TypeScript's own
      // decorator signatures (ClassDecorator, MethodDecorator) call `Function`; a constructor type would not fit them.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // `async` on a method that implements a Promise-returning interface without awaiting anything is kept on
      // purpose: a throw inside it becomes a rejection, as callers of the interface expect.
      '@typescript-eslint/require-await': 'off',
      // Rethrowing what a catch caught (typed unknown) through a returned Promise is not inventing a non-Error reason.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // A leading underscore marks a parameter or a destructured field left out on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      'jsdoc/require-jsdoc': [
        'error',
        {
          publicOnly: { esm: true, cjs: false },
          require: { ClassDeclaration: true, FunctionDeclaration: true, MethodDefinition: false },
          contexts: ['TSInterfaceDeclaration', 'TSTypeAliasDeclaration', 'TSEnumDeclaration', 'ExportNamedDeclaration > VariableDeclaration'],
        },
      ],
    },
  },
);
