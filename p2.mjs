import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend('wasm');
const P1 = new Float32Array(784*128).map(()=>Math.random()*0.1-0.05), P2=new Float32Array(1280).map(()=>Math.random()*0.1-0.05);
const imgs = new Float32Array(256*784).map(()=>Math.random());
function std(b){ // W1 [784,128]
  const X = tf.tensor(imgs.subarray(0,b*784),[b,784]); const W1=tf.tensor(P1,[784,128]); const W2=tf.tensor(P2,[128,10]);
  const r = tf.tidy(()=>{ const z1=tf.matMul(X,W1); const h=tf.relu(z1); const z2=tf.matMul(h,W2); const p=tf.softmax(z2);
 const dz2=p; const dW2=tf.matMul(tf.transpose(h),dz2); const dh=tf.matMul(dz2,tf.transpose(W2)); const dz1=tf.mul(dh,tf.step(z1)); const dW1t=tf.matMul(tf.transpose(dz1),X); const dW1=tf.transpose(dW1t); return [dW1,dW2,tf.sum(dz1,0),tf.sum(dz2,0)];});
  const out=r[0].dataSync(); tf.dispose([X,W1,W2,...r]); return out; }
function tr(b){ // W1T [128,784]
  const X = tf.tensor(imgs.subarray(0,b*784),[b,784]); const XT=tf.transpose(X); const W1T=tf.tensor(P1,[128,784]); const W2T=tf.tensor(P2,[10,128]);
  const r = tf.tidy(()=>{ const z1t=tf.matMul(W1T,XT); const ht=tf.relu(z1t); const z2t=tf.matMul(W2T,ht); const p=tf.softmax(tf.transpose(z2t));
 const dz2t=tf.transpose(p); const dW2T=tf.matMul(dz2t,tf.transpose(ht)); const dht=tf.matMul(tf.transpose(W2T),dz2t); const dz1t=tf.mul(dht,tf.step(z1t)); const dW1T=tf.matMul(dz1t,X); return [dW1T,dW2T,tf.sum(dz1t,1),tf.sum(dz2t,1)];});
  const out=r[0].dataSync(); tf.dispose([X,XT,W1T,W2T,...r]); return out; }
for (const b of [16,32,128,256]) for (const [n,f] of [['std',std],['tr',tr]]) {
  for(let i=0;i<30;i++) f(b);
  const t0=performance.now(); const it=b<100?1000:300; for(let i=0;i<it;i++) f(b); console.log(n,b,((performance.now()-t0)/it).toFixed(3),'ms', tf.memory().numTensors);
}
