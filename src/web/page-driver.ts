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

/** The data form's settings for your pictures, as a person fills them in (empty: the defaults). */
export interface PictureSettings {
  /** A zip of the folder, or the folder itself, on this machine. */
  readonly zip?: string;
  readonly folder?: string;
  readonly imageSize?: string;
  readonly channels?: '' | '1' | '3';
  readonly resize?: 'stretch' | 'pad';
  readonly validationSplit?: string;
}

/**
 * Sets the data form and picks the pictures; returns the page's line about them once read, or
 * throws its error line.
 */
export async function readPicturesOnPage(page: Page, settings: PictureSettings, timeoutMs = 120_000): Promise<string> {
  await page.fill('input[name=imageSize]', settings.imageSize ?? '');
  await page.selectOption('select[name=channels]', settings.channels ?? '');
  await page.selectOption('select[name=resize]', settings.resize ?? 'stretch');
  await page.fill('input[name=validationSplit]', settings.validationSplit ?? '');
  if (settings.zip !== undefined) await page.setInputFiles('#pictures-zip', settings.zip);
  else if (settings.folder !== undefined) await page.setInputFiles('#pictures-folder', settings.folder);
  const done = page.locator('#pictures-status', { hasText: /^(Ready|The pictures could not be read)/ });
  await done.waitFor({ timeout: timeoutMs });
  if ((await page.locator('#pictures-error:not([hidden])').count()) > 0) {
    throw new Error(`${await page.textContent('#pictures-error')}`);
  }
  return (await page.textContent('#pictures-status')) ?? '';
}
