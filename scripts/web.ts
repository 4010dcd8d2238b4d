/** `npm run web`: builds the page that trains in the browser, and serves it with the dataset on 127.0.0.1. */
import { locateFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError, OptionError } from '../src/errors.js';
import { buildPage } from '../src/web/build.js';
import { servePage } from '../src/web/server.js';

const USAGE = `Usage: npm run web -- [--port N] [--data DIR]

Builds the page (dist/web) and serves it on http://127.0.0.1:PORT/ with the headers that make it
cross-origin isolated, and the four Fashion-MNIST files, found as npm run train finds them.
  --port N     the port (default 8080; 0 takes a free one)
  --data DIR   where Fashion-MNIST is (as for npm run train)`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    port: { type: 'string' },
    data: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = values.port === undefined ? 8080 : checkPort(values.port);
  const dataFiles = await locateFashionMnist({ dir: values.data });
  const server = await servePage({ pageDir: await buildPage(), dataFiles, port });
  console.log(`Serving the page on ${server.url} (Ctrl-C stops)`);
  process.once('SIGINT', () => void server.close());
  process.once('SIGTERM', () => void server.close());
}

function checkPort(text: string): number {
  const port = Number(text);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new OptionError(`--port must be an integer between 0 and 65535, got ${JSON.stringify(text)}`);
  }
  return port;
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
