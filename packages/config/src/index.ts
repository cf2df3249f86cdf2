export { parseConfig, loadConfig, resolveConfig, CONFIG_FILE_NAME } from './config.js';
export type { SitecacheConfig, SitecacheConfigInput } from './config.js';
export { ConfigError, ConfigFileError } from './errors.js';
