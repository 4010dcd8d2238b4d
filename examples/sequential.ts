/**
 * A convolutional network written the way tfjs documents models, with tf.sequential and tf.layers,
 * trained data-parallel on worker threads (tfjs's own model.fit cannot train it on the wasm
 * backend: it has no kernel for a convolution's filter gradient there). The model is trained from
 * its own weights and gets the trained ones back, as with model.fit. Run with:
 * npm run build && node dist/examples/sequential.js
 */
import * as tf from '@tensorflow/tfjs';
import { loadFashionMnist, train } from 'fashion-mnist-parallel';

// Importing the package has started tfjs (on its wasm backend): layers can be built at once.
const model = tf.sequential({
  layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dropout({ rate: 0.25 }),
    tf.layers.dense({ units: 10, activation: 'softmax' }),
  ],
});

const data = await loadFashionMnist();
// The first 6,000 training images: an example should take seconds, not the full run.
const count = 6000;
const slice = {
  ...data,
  train: { images: data.train.images.subarray(0, count * 784), labels: data.train.labels.subarray(0, count), count },
};
const result = await train({ model, data: slice, workers: 2, epochs: 2, onLog: (line) => console.log(line) });
console.log(`trained ${result.config.model}: test accuracy ${result.testAccuracy.toFixed(4)}`);

// The same model object, now trained: predict the first test image.
const [first] = tf.tidy(() =>
  Array.from(
    (model.predict(tf.div(tf.tensor4d(data.test.images.subarray(0, 784), [1, 28, 28, 1], 'float32'), 255)) as tf.Tensor)
      .argMax(1)
      .dataSync(),
  ),
);
console.log(
  `the first test image is a ${data.classNames[first]}; it is labelled ${data.classNames[data.test.labels[0]]}`,
);
