import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FASHION_MNIST_FILES } from '../data/fashion-mnist-files.js';
import { OptionError } from '../errors.js';
import { WASM_FILES, type WasmName } from '../wasm.js';

export interface PageServerOptions {
  /** The built page (see buildPage). */
  readonly pageDir: string;
  /** The dataset's four files, in the order of FASHION_MNIST_FILES, as locateFashionMnist finds them. */
  readonly dataFiles: readonly string[];
  /** 0 takes any free port. @default 8080 */
  readonly port?: number;
}

export interface PageServer {
  /** The page's address, on 127.0.0.1. */
  readonly url: string;
  close(): Promise<void>;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/**
 * Serves the page on 127.0.0.1: the built page under `/` and `/app/`, tfjs-wasm's .wasm files under
 * `/tfjs/`, the project's under `/wasm/`, and the dataset's files under `/data/` (as they are on
 * disk, gzipped or not: the page inflates them). Only those paths exist: the table of files is made
 * once, here, so no request can name a file outside it. Every answer carries the headers that make
 * the page cross-origin isolated, which SharedArrayBuffer needs.
 */
export async function servePage(options: PageServerOptions): Promise<PageServer> {
  const files = await fileTable(options);
  const server = createServer((request, response) => answer(files, request, response));
  const port = options.port ?? 8080;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new OptionError(`port ${port} is in use; choose another with --port N`)
          : new OptionError(`cannot serve on 127.0.0.1:${port} (${error.code ?? error.message})`),
      ),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function fileTable(options: PageServerOptions): Promise<Map<string, string>> {
  const files = new Map<string, string>([['/', join(options.pageDir, 'index.html')]]);
  for (const name of await readdir(join(options.pageDir, 'app')))
    files.set(`/app/${name}`, join(options.pageDir, 'app', name));
  const tfjsWasm = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
  for (const name of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) {
    files.set(`/tfjs/${name}`, join(tfjsWasm, name));
  }
  for (const name of Object.keys(WASM_FILES) as WasmName[]) {
    files.set(`/wasm/${WASM_FILES[name]}`, fileURLToPath(new URL(`../${WASM_FILES[name]}`, import.meta.url)));
  }
  FASHION_MNIST_FILES.forEach((file, i) => files.set(`/data/${file}`, options.dataFiles[i]));
  return files;
}

function answer(files: Map<string, string>, request: IncomingMessage, response: ServerResponse): void {
  const headers = {
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'cross-origin-resource-policy': 'same-origin',
    'x-content-type-options': 'nosniff',
  };
  const path = files.get(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end();
    return;
  }
  if (path === undefined) {
    response.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  stat(path).then(
    (info) => {
      const type = TYPES[extname(path)] ?? 'application/octet-stream';
      response.writeHead(200, {
        ...headers,
        'content-type': type,
        'content-length': info.size,
        'cache-control': 'no-cache',
      });
      if (request.method === 'HEAD') response.end();
      else createReadStream(path).pipe(response);
    },
    () => response.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found\n'),
  );
}
