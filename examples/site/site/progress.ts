/** A one-line progress bar on a terminal; on anything else a plain line every tenth of the way. */
export function progressBar(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): { tick(): void; done(): void } {
  const started = Date.now();
  let count = 0;
  let lastTenth = -1;
  const render = (): void => {
    const seconds = (Date.now() - started) / 1000;
    const rate = count / Math.max(seconds, 0.001);
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round((count / Math.max(total, 1)) * width);
      const eta = rate > 0 ? Math.round((total - count) / rate) : 0;
      stream.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${count}/${total} ${rate.toFixed(0)}/s eta ${eta}s `);
    } else {
      const tenth = Math.floor((count / Math.max(total, 1)) * 10);
      if (tenth !== lastTenth) {
        lastTenth = tenth;
        stream.write(`${label}: ${count}/${total} (${rate.toFixed(0)}/s)\n`);
      }
    }
  };
  return {
    tick() {
      count++;
      render();
    },
    done() {
      render();
      if (stream.isTTY) stream.write('\n');
    },
  };
}
