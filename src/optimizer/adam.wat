;; The optimizer's hot loop: the all-reduce of the workers' gradient slots fused with Adam, on two
;; parameters at a time with WebAssembly SIMD (f64x2). It does exactly the float64 operations of
;; `adamUpdate` in adam.ts, in the same order, so its results are bit-identical to that reference:
;;
;;   g  = (slot_0[i] + slot_1[i] + ... + slot_{count-1}[i]) * scale
;;   m' = beta1 * m[i] + c1 * g                  (c1 = 1 - beta1)
;;   v' = beta2 * v[i] + (c2 * g) * g            (c2 = 1 - beta2)
;;   m[i] = m'; v[i] = v';  params[i] = params[i] - (alpha * m') / (sqrt(v') + epsilon)
;;
;; `params`, `m`, `v` are float32 and the slots float64, in the shared memory; all four are byte
;; offsets, `stride` the bytes from one slot to the next, `lo`/`hi` element indices. It returns 1 when a
;; reduced gradient g is NaN or infinite (training diverged), else 0.
(module
  (memory (import "env" "memory") 1 65536 shared)
  (func (export "adam")
    (param $params i32) (param $m i32) (param $v i32) (param $slots i32) (param $stride i32) (param $count i32)
    (param $lo i32) (param $hi i32)
    (param $scale f64) (param $beta1 f64) (param $c1 f64) (param $beta2 f64) (param $c2 f64)
    (param $alpha f64) (param $epsilon f64)
    (result i32)
    (local $i i32) (local $at i32) (local $k i32) (local $slot i32)
    (local $g v128) (local $mi v128) (local $vi v128)
    (local $sg f64) (local $smi f64) (local $svi f64)
    (local $xscale v128) (local $xbeta1 v128) (local $xc1 v128) (local $xbeta2 v128) (local $xc2 v128)
    (local $xalpha v128) (local $xepsilon v128) (local $bad v128) (local $sbad i32)
    (local.set $xscale (f64x2.splat (local.get $scale)))
    (local.set $xbeta1 (f64x2.splat (local.get $beta1)))
    (local.set $xc1 (f64x2.splat (local.get $c1)))
    (local.set $xbeta2 (f64x2.splat (local.get $beta2)))
    (local.set $xc2 (f64x2.splat (local.get $c2)))
    (local.set $xalpha (f64x2.splat (local.get $alpha)))
    (local.set $xepsilon (f64x2.splat (local.get $epsilon)))
    (local.set $i (local.get $lo))

    ;; Two parameters per iteration: load two float32 (64 bits), widen to f64x2, narrow to store;
    ;; the slots' two float64 as they are.
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.gt_s (i32.add (local.get $i) (i32.const 2)) (local.get $hi)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $slot (i32.add (local.get $slots) (i32.shl (local.get $at) (i32.const 1))))
        (local.set $g (v128.load (local.get $slot)))
        (local.set $k (i32.const 1))
        (block $sum_done
          (loop $sum
            (br_if $sum_done (i32.ge_u (local.get $k) (local.get $count)))
            (local.set $slot (i32.add (local.get $slot) (local.get $stride)))
            (local.set $g (f64x2.add (local.get $g) (v128.load (local.get $slot))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $sum)))
        (local.set $g (f64x2.mul (local.get $g) (local.get $xscale)))
        ;; g - g is NaN exactly when g is NaN or infinite.
        (local.set $bad (v128.or (local.get $bad) (f64x2.ne (f64x2.sub (local.get $g) (local.get $g)) (f64x2.sub (local.get $g) (local.get $g)))))
        (local.set $mi
          (f64x2.add
            (f64x2.mul (local.get $xbeta1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $m) (local.get $at)))))
            (f64x2.mul (local.get $xc1) (local.get $g))))
        (local.set $vi
          (f64x2.add
            (f64x2.mul (local.get $xbeta2) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $v) (local.get $at)))))
            (f64x2.mul (f64x2.mul (local.get $xc2) (local.get $g)) (local.get $g))))
        (v128.store64_lane 0 (i32.add (local.get $m) (local.get $at)) (f32x4.demote_f64x2_zero (local.get $mi)))
        (v128.store64_lane 0 (i32.add (local.get $v) (local.get $at)) (f32x4.demote_f64x2_zero (local.get $vi)))
        (v128.store64_lane 0 (i32.add (local.get $params) (local.get $at))
          (f32x4.demote_f64x2_zero
            (f64x2.sub
              (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $params) (local.get $at))))
              (f64x2.div
                (f64x2.mul (local.get $xalpha) (local.get $mi))
                (f64x2.add (f64x2.sqrt (local.get $vi)) (local.get $xepsilon))))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $pairs)))

    ;; The last parameter of an odd-length slice, the same operations on scalars.
    (if (i32.lt_s (local.get $i) (local.get $hi))
      (then
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $slot (i32.add (local.get $slots) (i32.shl (local.get $at) (i32.const 1))))
        (local.set $sg (f64.load (local.get $slot)))
        (local.set $k (i32.const 1))
        (block $tail_sum_done
          (loop $tail_sum
            (br_if $tail_sum_done (i32.ge_u (local.get $k) (local.get $count)))
            (local.set $slot (i32.add (local.get $slot) (local.get $stride)))
            (local.set $sg (f64.add (local.get $sg) (f64.load (local.get $slot))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $tail_sum)))
        (local.set $sg (f64.mul (local.get $sg) (local.get $scale)))
        (local.set $sbad (f64.ne (f64.sub (local.get $sg) (local.get $sg)) (f64.sub (local.get $sg) (local.get $sg))))
        (local.set $smi
          (f64.add
            (f64.mul (local.get $beta1) (f64.promote_f32 (f32.load (i32.add (local.get $m) (local.get $at)))))
            (f64.mul (local.get $c1) (local.get $sg))))
        (local.set $svi
          (f64.add
            (f64.mul (local.get $beta2) (f64.promote_f32 (f32.load (i32.add (local.get $v) (local.get $at)))))
            (f64.mul (f64.mul (local.get $c2) (local.get $sg)) (local.get $sg))))
        (f32.store (i32.add (local.get $m) (local.get $at)) (f32.demote_f64 (local.get $smi)))
        (f32.store (i32.add (local.get $v) (local.get $at)) (f32.demote_f64 (local.get $svi)))
        (f32.store (i32.add (local.get $params) (local.get $at))
          (f32.demote_f64
            (f64.sub
              (f64.promote_f32 (f32.load (i32.add (local.get $params) (local.get $at))))
              (f64.div
                (f64.mul (local.get $alpha) (local.get $smi))
                (f64.add (f64.sqrt (local.get $svi)) (local.get $epsilon))))))))
    (i32.or (local.get $sbad) (v128.any_true (local.get $bad))))
)
