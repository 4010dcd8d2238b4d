/**
 * Embedding the trainer in a program, with the public API only: train on a slice of Fashion-MNIST
 * in a trainer thread (this thread's event loop stays free), report progress, save the model and
 * load it back. Run with: npm run build && node dist/examples/embed.js [outDir]
 */
import { createTrainerThread, loadFashionMnist, loadModel, saveModel } from 'fashion-mnist-parallel';

const out = process.argv[2] ?? 'runs/example';
const data = await loadFashionMnist();
// The first 6,000 training images: an example should take seconds, not the full run.
const count = 6000;
const slice = {
  ...data,
  train: { images: data.train.images.subarray(0, count * 784), labels: data.train.labels.subarray(0, count), count },
};

const trainer = await createTrainerThread();
try {
  const result = await trainer.train({
    data: slice,
    workers: 2,
    epochs: 2,
    onLog: (line) => console.log(line),
    onEpochEnd: (log) =>
      console.log(`epoch ${log.epoch}: loss ${log.loss.toFixed(4)}, test accuracy ${log.testAccuracy.toFixed(4)}`),
  });
  await saveModel(result.model, out);
  const reloaded = await loadModel(out);
  console.log(
    `saved to ${out}; reloaded model has ${reloaded.countParams()} parameters; test accuracy ${result.testAccuracy.toFixed(4)}`,
  );
} finally {
  await trainer.close();
}
