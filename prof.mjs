import { Session } from './dist/src/coordinator/session.js';
import { resolveOptions } from './dist/src/coordinator/options.js';
import { loadFashionMnist } from './dist/src/index.js';
const data = await loadFashionMnist({ dir: '/usr/share/datasets/fashion-mnist' });
const args = process.argv.slice(2).map(Number);
for (const B of [256, 32]) for (const N of args) {
  const { progressIntervalMs, ...config } = resolveOptions({ workers: N, batchSize: B, epochs: 1 });
  const s = new Session(data, config); s.beginEpoch();
  await s.runSteps(0, 30);
  const before = Float64Array.from(s.shared.timings);
  const steps = B === 256 ? 150 : 600;
  const t0 = performance.now(); await s.runSteps(30, 30 + steps); const ms = (performance.now() - t0) / steps;
  const d = s.shared.timings.map((v, i) => v - before[i]);
  const avg = (k) => { let x = 0; for (let r = 0; r < N; r++) x += d[r * 5 + k]; return (x / N / steps).toFixed(3); };
  console.log(`B=${B} N=${N} ${ms.toFixed(3)} ms/step ${(B / ms * 1000).toFixed(0)} samples/s | grad ${avg(0)} wait1 ${avg(1)} update ${avg(2)} wait2 ${avg(3)}`);
  await s.close();
}
