export { renderNginxConf, renderNjsKeyModule } from './render.js';
export { checkNginxConf } from './check.js';
export type { RenderOptions, Md5Backend, NormalizeBackend } from './options.js';
export { NginxConfOptionError, NginxCheckError } from './errors.js';
