import { fileURLToPath } from 'node:url';

/**
 * The package's root directory, whether this module runs from `src/` (tests) or `dist/` (the
 * built CLI): both sit one level below it. Bundled assets (the demo model, the dashboard's
 * vendor files) are found from here, not from the working directory.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url));
