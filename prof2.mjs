import { Session } from './dist/src/coordinator/session.js';
import { resolveOptions } from './dist/src/coordinator/options.js';
import { loadFashionMnist } from './dist/src/index.js';
const data = await loadFashionMnist({ dir: '/usr/share/datasets/fashion-mnist' });
const [N, B] = process.argv.slice(2).map(Number);
const { progressIntervalMs, ...config } = resolveOptions({ workers: N, batchSize: B, epochs: 3 });
const s = new Session(data, config);
for (let e = 0; e < 3; e++) { s.beginEpoch();
  for (let k = 0; k < s.stepsPerEpoch; k += 50) { const end = Math.min(k + 50, s.stepsPerEpoch);
    const before = Float64Array.from(s.shared.timings);
    const t0 = performance.now(); await s.runSteps(k, end); const ms = (performance.now() - t0) / (end - k);
    const d = s.shared.timings.map((v, i) => v - before[i]);
    const avg = (q) => { let x = 0; for (let r = 0; r < N; r++) x += d[r * 5 + q]; return (x / N / (end - k)).toFixed(2); };
    if (k % 100 === 0) console.log(`e${e} k${k} ${ms.toFixed(2)} ms/step | grad ${avg(0)} w1 ${avg(1)} upd ${avg(2)} w2 ${avg(3)}`);
  } }
await s.close();
