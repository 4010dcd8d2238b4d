import type { Page } from 'playwright-core';

/** The page's form, as a person fills it in. */
export interface PageSettings {
  readonly model: 'mlp' | 'cnn';
  readonly workers: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** The first this many training images. */
  readonly images: number;
  readonly seed: number;
}

/** What a finished run shows. */
export interface PageRun {
  /** The last epoch's test accuracy, as the workers' evaluation gave it. */
  readonly testAccuracy: number;
  /** Per epoch: training images per second of its training part (the table's last column). */
  readonly samplesPerSecond: readonly number[];
}

/** Waits until the page has loaded the dataset and started tfjs (or said why it cannot). */
export async function pageReady(page: Page, timeoutMs = 180_000): Promise<void> {
  await page.locator('#train:enabled, #error:not([hidden])').first().waitFor({ timeout: timeoutMs });
  const error = await page.locator('#error:not([hidden])').count();
  if (error > 0) throw new Error(`the page could not start: ${await page.textContent('#error')}`);
}

/** Fills in the form and clicks Train; does not wait. */
export async function startTraining(page: Page, settings: PageSettings): Promise<void> {
  await page.selectOption('select[name=model]', settings.model);
  for (const name of ['workers', 'epochs', 'batchSize', 'images', 'seed'] as const) {
    await page.fill(`input[name=${name}]`, String(settings[name]));
  }
  await page.click('#train');
}

/** Trains on the page and waits for the results; a run that fails throws the page's message. */
export async function trainOnPage(page: Page, settings: PageSettings, timeoutMs = 600_000): Promise<PageRun> {
  await startTraining(page, settings);
  await page.locator('#results:not([hidden]), #error:not([hidden])').first().waitFor({ timeout: timeoutMs });
  if ((await page.locator('#error:not([hidden])').count()) > 0) {
    throw new Error(`training on the page failed: ${await page.textContent('#error')}`);
  }
  const rows = await page.locator('#epochs tbody tr').all();
  return {
    testAccuracy: Number(await page.getAttribute('#test-accuracy', 'data-value')),
    samplesPerSecond: await Promise.all(
      rows.map(async (row) => Number(await row.getAttribute('data-samples-per-second'))),
    ),
  };
}
