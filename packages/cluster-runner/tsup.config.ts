import { defineConfig } from 'tsup';

// p-limit ships only as ESM. In the CommonJS build, require() of it returns its module namespace,
// and esbuild's interop then takes that namespace for the default export ("is not a function"), so
// it is bundled instead (with its one dependency, yocto-queue). The entries and formats are in the
// build script.
export default defineConfig({ noExternal: ['p-limit'] });
