import type { BatchProgress, EpochLog } from '../coordinator/config.js';

const BAR_WIDTH = 30;

/** Keras's progress line: `1875/1875 [==============================] - 3s 2ms/step - loss: 0.4963 - accuracy: 0.8247`. */
export function progressLine(progress: BatchProgress, log?: EpochLog): string {
  const { step, steps, seconds } = progress;
  const width = String(steps).length;
  const filled = Math.floor((BAR_WIDTH * step) / steps);
  const bar =
    step >= steps
      ? '='.repeat(BAR_WIDTH)
      : '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + '.'.repeat(BAR_WIDTH - Math.max(filled, 0));
  const timing =
    step >= steps || step === 0
      ? `${Math.round(log?.seconds ?? seconds)}s ${formatPerStep(seconds / Math.max(step, 1))}`
      : `ETA: ${Math.round((seconds / step) * (steps - step))}s`;
  let line = `${String(step).padStart(width)}/${steps} [${bar}] - ${timing} - loss: ${progress.loss.toFixed(4)} - accuracy: ${progress.accuracy.toFixed(4)}`;
  if (log) line += ` - test_loss: ${log.testLoss.toFixed(4)} - test_accuracy: ${log.testAccuracy.toFixed(4)}`;
  return line;
}

function formatPerStep(secondsPerStep: number): string {
  const ms = secondsPerStep * 1000;
  return ms >= 1 ? `${Math.round(ms)}ms/step` : `${Math.round(ms * 1000)}us/step`;
}

/** A byte count as a person reads it. */
export function formatBytes(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${(bytes / 1024).toFixed(0)} kB`;
}
