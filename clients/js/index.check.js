// Type-checked only (tsconfig.json; neither published nor run): the SDK's code must fit
// its hand-written declarations (index.d.ts), so the two cannot drift apart.
import * as implementation from './src/index.js';

/** @type {typeof import('./index.js')} */
export const declared = implementation;
