/** A render option sitecache cannot turn into a working nginx config. */
export class NginxConfOptionError extends Error {
  override readonly name = 'NginxConfOptionError';
  readonly option: string;
  readonly value: unknown;

  constructor(option: string, expected: string, value: unknown) {
    super(`Invalid nginx-conf option "${option}": expected ${expected}, got ${JSON.stringify(value) ?? 'nothing'}`);
    this.option = option;
    this.value = value;
  }
}

/** `nginx -t` refused a rendered config; `output` is nginx's own message. */
export class NginxCheckError extends Error {
  override readonly name = 'NginxCheckError';
  readonly output: string;

  constructor(output: string) {
    super(`nginx -t refused the generated config:\n${output}`);
    this.output = output;
  }
}
