import type { EpochRecord } from './sides.js';

/** When a run's test accuracy first reached a target: that epoch, and the seconds of the epochs up to it. */
export interface TimeToAccuracy {
  readonly epoch: number;
  readonly seconds: number;
}

/**
 * The first epoch whose test accuracy is `target` or above, and the seconds of the epochs up to
 * and including it (each training plus evaluating); null when none reached it.
 */
export function timeTo(epochs: readonly EpochRecord[], target: number): TimeToAccuracy | null {
  let seconds = 0;
  for (const epoch of epochs) {
    seconds += epoch.seconds;
    if (epoch.testAccuracy >= target) return { epoch: epoch.epoch, seconds };
  }
  return null;
}
