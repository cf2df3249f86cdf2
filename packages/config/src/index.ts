export { parseConfig, loadConfig, GZIP_FLAG, CONFIG_FILE_NAME } from './config.js';
export type { SitecacheConfig } from './config.js';
export { ConfigError, ConfigFileError } from './errors.js';
