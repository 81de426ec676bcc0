// ESLint (flat config) over every .js file in the repo: `make lint`. The SDK, the pages and
// the tests are all ES modules; pages run in the browser, the SDK's tests and helpers in Node.
import js from '@eslint/js';
import globals from 'globals';

export default [
  // clients/web/vendor/: third-party builds kept as published (its README.md).
  { ignores: ['node_modules/', '.venv*/', 'build/', 'dist/', 'tests/artifacts/', 'clients/web/vendor/'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // ignoreRestSiblings: `const { id, kind, ...rest } = entry` is how a key is left out.
      'no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Page code: the streamer console, the viewer page and the features' static files.
    files: ['streamer_console/static/**/*.js', 'clients/web/**/*.js', 'engine/features/*/static/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    // The SDK runs in browsers and in Node (20+: WebSocket, fetch, crypto are globals in both).
    files: ['clients/js/src/**/*.js'],
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
  },
  {
    files: ['clients/js/test/**/*.js', 'clients/js/test-support/**/*.js', 'eslint.config.js'],
    languageOptions: { globals: globals.node },
  },
];
