#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '@sitecache/config';
import { checkNginxConf } from './check.js';
import type { Md5Backend, NormalizeBackend, RenderOptions } from './options.js';
import { renderNginxConf, renderNjsKeyModule } from './render.js';

const HELP = `Usage: sitecache-nginx [--config FILE] [options]

Prints the nginx config that serves cached pages from memcached and falls back to the app,
generated from the same sitecache.config.json the app reads.

Options:
  --config FILE        the config file (default: $SITECACHE_CONFIG or ./sitecache.config.json)
  --standalone         a complete nginx.conf that \`nginx -c\` runs as it is (default: a snippet
                       to include inside an http {} block)
  --prefix DIR         with --standalone: folder for the pid file, logs and temp paths
  --md5 BACKEND        set_misc (default), lua or njs: the module that computes the key
  --normalize MODULE   with --md5 set_misc: lua (default) or njs, the module that removes the
                       config's ignoreParams from the URI before it is hashed
  --njs-module FILE    with --md5 or --normalize njs: where to write the key module nginx imports
  --buffer-size SIZE   memcached_buffer_size (default 128k): make it hold a whole page
  --workers N          with --standalone: worker_processes (default auto)
  --app-keepalive-timeout TIME
                       how long nginx keeps an idle app connection (default 4s): keep it
                       below the app server's keep-alive timeout (Node: 5s)
  --output FILE        write the config to FILE instead of standard output
  --check              run \`nginx -t\` on the result and print nginx's verdict
  -h, --help           show this help
`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      standalone: { type: 'boolean', default: false },
      prefix: { type: 'string' },
      md5: { type: 'string' },
      normalize: { type: 'string' },
      'njs-module': { type: 'string' },
      'buffer-size': { type: 'string' },
      workers: { type: 'string' },
      'app-keepalive-timeout': { type: 'string' },
      output: { type: 'string' },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const config = loadConfig(values.config);
  const options: RenderOptions = {
    standalone: values.standalone,
    ...(values.prefix !== undefined ? { prefix: resolve(values.prefix) } : {}),
    ...(values.md5 !== undefined ? { md5: values.md5 as Md5Backend } : {}),
    ...(values.normalize !== undefined ? { normalize: values.normalize as NormalizeBackend } : {}),
    ...(values['njs-module'] !== undefined ? { njsModulePath: resolve(values['njs-module']) } : {}),
    ...(values['buffer-size'] !== undefined ? { memcachedBufferSize: values['buffer-size'] } : {}),
    ...(values['app-keepalive-timeout'] !== undefined ? { appKeepaliveTimeout: values['app-keepalive-timeout'] } : {}),
    ...(values.workers !== undefined ? { workerProcesses: values.workers === 'auto' ? 'auto' : Number(values.workers) } : {}),
  };
  const text = renderNginxConf(config, options);
  if ((options.md5 === 'njs' || options.normalize === 'njs') && options.njsModulePath) writeFileSync(options.njsModulePath, renderNjsKeyModule(config));
  if (values.output) writeFileSync(values.output, text);
  else process.stdout.write(text);
  if (values.check) process.stderr.write(`${await checkNginxConf(config, options)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`sitecache-nginx: ${error.message}\n`);
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) process.stderr.write(`\n${HELP}`);
    process.exitCode = 1;
  },
);
