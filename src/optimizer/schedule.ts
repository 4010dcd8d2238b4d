/**
 * The learning-rate schedule, a pure function of the step (as nanoGPT's `get_lr`): the workers
 * compute it themselves at every step, so it costs no message.
 */
export type LearningRateSchedule = 'constant' | 'cosine';

export const SCHEDULES: readonly LearningRateSchedule[] = ['constant', 'cosine'];

/**
 * Adam's learning rate at 0-based `step` of `totalSteps`: `constant` keeps `base`; `cosine` decays
 * it from `base` to 0 over the run, `base * (1 + cos(pi * step / totalSteps)) / 2`.
 */
export function learningRateAt(schedule: LearningRateSchedule, base: number, step: number, totalSteps: number): number {
  switch (schedule) {
    case 'constant':
      return base;
    case 'cosine':
      return (base * (1 + Math.cos((Math.PI * step) / totalSteps))) / 2;
  }
}
