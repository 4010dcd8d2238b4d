import { Session } from './dist/src/coordinator/session.js';
import { resolveOptions } from './dist/src/coordinator/options.js';
import { loadFashionMnist } from './dist/src/index.js';
const data = await loadFashionMnist({ dir: '/usr/share/datasets/fashion-mnist' });
const [N, B] = process.argv.slice(2).map(Number);
const { progressIntervalMs, ...config } = resolveOptions({ workers: N, batchSize: B, epochs: 3 });
const s = new Session(data, config);
s.beginEpoch(); await s.runSteps(0, 200);
for (let k = 0; k < 4; k++) {
  const before = Float64Array.from(s.shared.timings);
  await s.runSteps(0, 0); s.beginEpoch(); const t0 = performance.now(); await s.runSteps(0, 200); const ms = (performance.now() - t0) / 200;
  const d = s.shared.timings.map((v, i) => v - before[i]);
  console.log(ms.toFixed(2), Array.from({ length: N }, (_, r) => `r${r}: grad ${(d[r * 5] / d[r * 5 + 4]).toFixed(2)} w1 ${(d[r * 5 + 1] / d[r * 5 + 4]).toFixed(2)} n=${d[r*5+4]}`).join(' | '));
}
await s.close();
