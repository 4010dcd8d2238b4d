;; The transforms of Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for
;; Convolutional Neural Networks", 2016) for 3x3 convolutions with stride 1, run on tfjs-wasm's own
;; heap like kernels.wat: pointers are byte offsets, nothing is copied in or out. The products
;; between them are plain matMuls (kernels.wat's matrix_products and outer_products). Every function
;; is the twin of one in winograd-reference.ts, which says what it computes; the tests hold them to
;; it bit for bit.
;;
;; F(m x m, 3 x 3), m = 2 or 4, works on tiles of a = m + 2 input pixels a side, which overlap by 2,
;; and gives m x m outputs per tile. Tile t = (b * tilesY + ty) * tilesX + tx covers outputs
;; (ty * m + r, tx * m + s), 0 <= r, s < m, and inputs from (ty * m - padTop, tx * m - padLeft).
;; The Winograd domain holds a * a matrices, one per position p = i * a + j of the transformed
;; tile; element (p, t, ch) is at (p * sP + t * sT + ch) * 4 bytes from its base: channels are
;; contiguous, so that every matrix is a plain operand of the products.
;;
;; Channels go four at a time (f32x4): the layers use these kernels only for channel counts that are
;; multiples of 4. A tile's pixels are copied whole (every channel, one memory.copy per row of the
;; tile, zeros past the image's edge) into the scratch area the caller provides, 36 * c + 144
;; floats: then each 2-D transform is the 1-D one applied to the tile's rows, then to its columns,
;; four channels at a time, through the last 144 floats.
(module
  (import "env" "memory" (memory 1))

  ;; V = B^T d B for every tile d of the input x (NHWC [n, h, w, c], 0 outside it), into v.
  (func (export "winograd_input")
    (param $x i32) (param $v i32) (param $n i32) (param $h i32) (param $w i32) (param $c i32)
    (param $padTop i32) (param $padLeft i32) (param $tilesY i32) (param $tilesX i32) (param $m i32)
    (param $sP i32) (param $sT i32) (param $scratch i32)
    (local $a i32) (local $b i32) (local $ty i32) (local $tx i32) (local $t i32) (local $ch i32)
    (local $i i32) (local $j i32) (local $k i32) (local $iy i32) (local $ix0 i32) (local $pixel i32)
    (local $lo i32) (local $hi i32) (local $dst i32) (local $tileRow i32)
    (local $mid i32) (local $in i32) (local $is i32) (local $out i32) (local $os i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $x4 v128) (local $x5 v128)
    (local $d v128) (local $e v128)
    (local.set $a (i32.add (local.get $m) (i32.const 2)))
    (local.set $pixel (i32.shl (local.get $c) (i32.const 2)))
    (local.set $tileRow (i32.mul (local.get $a) (local.get $pixel)))
    (local.set $mid (i32.add (local.get $scratch) (i32.mul (local.get $pixel) (i32.const 36))))
    (local.set $t (i32.const 0))
    (local.set $b (i32.const 0))
    (block $bEnd (loop $bLoop (br_if $bEnd (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $ty (i32.const 0))
      (block $yEnd (loop $yLoop (br_if $yEnd (i32.ge_u (local.get $ty) (local.get $tilesY)))
        (local.set $tx (i32.const 0))
        (block $xEnd (loop $xLoop (br_if $xEnd (i32.ge_u (local.get $tx) (local.get $tilesX)))
          ;; The tile's a x a pixels into the scratch area, row by row: the columns inside the
          ;; image, [lo, hi), in one copy, zeros on either side; rows outside it, zeros.
          (local.set $ix0 (i32.sub (i32.mul (local.get $tx) (local.get $m)) (local.get $padLeft)))
          (local.set $lo (select (i32.sub (i32.const 0) (local.get $ix0)) (i32.const 0) (i32.lt_s (local.get $ix0) (i32.const 0))))
          (local.set $hi (i32.sub (local.get $w) (local.get $ix0)))
          (if (i32.gt_s (local.get $hi) (local.get $a)) (then (local.set $hi (local.get $a))))
          (if (i32.lt_s (local.get $hi) (local.get $lo)) (then (local.set $hi (local.get $lo))))
          (local.set $i (i32.const 0))
          (block $gEnd (loop $gLoop (br_if $gEnd (i32.ge_u (local.get $i) (local.get $a)))
            (local.set $iy (i32.sub (i32.add (i32.mul (local.get $ty) (local.get $m)) (local.get $i)) (local.get $padTop)))
            (local.set $dst (i32.add (local.get $scratch) (i32.mul (local.get $i) (local.get $tileRow))))
            (if (i32.ge_u (local.get $iy) (local.get $h))
              (then (memory.fill (local.get $dst) (i32.const 0) (local.get $tileRow)))
              (else
                (memory.fill (local.get $dst) (i32.const 0) (i32.mul (local.get $lo) (local.get $pixel)))
                (memory.copy
                  (i32.add (local.get $dst) (i32.mul (local.get $lo) (local.get $pixel)))
                  (i32.add (local.get $x) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $h)) (local.get $iy)) (local.get $w))
                    (i32.add (local.get $ix0) (local.get $lo))) (local.get $pixel)))
                  (i32.mul (i32.sub (local.get $hi) (local.get $lo)) (local.get $pixel)))
                (memory.fill (i32.add (local.get $dst) (i32.mul (local.get $hi) (local.get $pixel))) (i32.const 0)
                  (i32.mul (i32.sub (local.get $a) (local.get $hi)) (local.get $pixel)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $gLoop)))
          (local.set $ch (i32.const 0))
          (block $cEnd (loop $cLoop (br_if $cEnd (i32.ge_u (local.get $ch) (local.get $c)))
            ;; 2a passes of the 1-D transform B^T: pass k < a takes row k of the tile into row k
            ;; of mid; pass a + j takes column j of mid into the a matrices of column j (p = i * a + j).
            (local.set $k (i32.const 0))
            (block $kEnd (loop $kLoop (br_if $kEnd (i32.ge_u (local.get $k) (i32.shl (local.get $a) (i32.const 1))))
              (if (i32.lt_u (local.get $k) (local.get $a))
                (then
                  (local.set $in (i32.add (i32.add (local.get $scratch) (i32.mul (local.get $k) (local.get $tileRow)))
                    (i32.shl (local.get $ch) (i32.const 2))))
                  (local.set $is (local.get $pixel))
                  (local.set $out (i32.add (local.get $mid) (i32.shl (i32.mul (local.get $k) (local.get $a)) (i32.const 4))))
                  (local.set $os (i32.const 16)))
                (else
                  (local.set $j (i32.sub (local.get $k) (local.get $a)))
                  (local.set $in (i32.add (local.get $mid) (i32.shl (local.get $j) (i32.const 4))))
                  (local.set $is (i32.shl (local.get $a) (i32.const 4)))
                  (local.set $out (i32.add (local.get $v) (i32.shl (i32.add (i32.add
                    (i32.mul (local.get $j) (local.get $sP)) (i32.mul (local.get $t) (local.get $sT))) (local.get $ch)) (i32.const 2))))
                  (local.set $os (i32.shl (i32.mul (local.get $a) (local.get $sP)) (i32.const 2)))))
              (local.set $x0 (v128.load (local.get $in)))
              (local.set $x1 (v128.load (i32.add (local.get $in) (local.get $is))))
              (local.set $x2 (v128.load (i32.add (local.get $in) (i32.shl (local.get $is) (i32.const 1)))))
              (local.set $x3 (v128.load (i32.add (local.get $in) (i32.mul (local.get $is) (i32.const 3)))))
              (if (i32.eq (local.get $m) (i32.const 4))
                (then
                  (local.set $x4 (v128.load (i32.add (local.get $in) (i32.shl (local.get $is) (i32.const 2)))))
                  (local.set $x5 (v128.load (i32.add (local.get $in) (i32.mul (local.get $is) (i32.const 5)))))
                  ;; B^T of F(4x4, 3x3), as in winograd-reference.ts.
                  (local.set $d (f32x4.sub (local.get $x4) (local.get $x2)))
                  (v128.store (local.get $out)
                    (f32x4.add (local.get $d) (f32x4.mul (v128.const f32x4 4 4 4 4) (f32x4.sub (local.get $x0) (local.get $x2)))))
                  (v128.store (i32.add (local.get $out) (local.get $os))
                    (f32x4.sub (f32x4.add (local.get $x3) (local.get $x4))
                      (f32x4.mul (v128.const f32x4 4 4 4 4) (f32x4.add (local.get $x1) (local.get $x2)))))
                  (v128.store (i32.add (local.get $out) (i32.shl (local.get $os) (i32.const 1)))
                    (f32x4.add (f32x4.sub (local.get $x4) (local.get $x3))
                      (f32x4.mul (v128.const f32x4 4 4 4 4) (f32x4.sub (local.get $x1) (local.get $x2)))))
                  (local.set $e (f32x4.mul (v128.const f32x4 2 2 2 2) (f32x4.sub (local.get $x3) (local.get $x1))))
                  (v128.store (i32.add (local.get $out) (i32.mul (local.get $os) (i32.const 3)))
                    (f32x4.add (local.get $d) (local.get $e)))
                  (v128.store (i32.add (local.get $out) (i32.shl (local.get $os) (i32.const 2)))
                    (f32x4.sub (local.get $d) (local.get $e)))
                  (v128.store (i32.add (local.get $out) (i32.mul (local.get $os) (i32.const 5)))
                    (f32x4.add (f32x4.sub (local.get $x5) (local.get $x3))
                      (f32x4.mul (v128.const f32x4 4 4 4 4) (f32x4.sub (local.get $x1) (local.get $x3))))))
                (else
                  ;; B^T of F(2x2, 3x3).
                  (v128.store (local.get $out) (f32x4.sub (local.get $x0) (local.get $x2)))
                  (v128.store (i32.add (local.get $out) (local.get $os)) (f32x4.add (local.get $x1) (local.get $x2)))
                  (v128.store (i32.add (local.get $out) (i32.shl (local.get $os) (i32.const 1)))
                    (f32x4.sub (local.get $x2) (local.get $x1)))
                  (v128.store (i32.add (local.get $out) (i32.mul (local.get $os) (i32.const 3)))
                    (f32x4.sub (local.get $x1) (local.get $x3)))))
              (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $kLoop)))
            (local.set $ch (i32.add (local.get $ch) (i32.const 4))) (br $cLoop)))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (local.set $tx (i32.add (local.get $tx) (i32.const 1))) (br $xLoop)))
        (local.set $ty (i32.add (local.get $ty) (i32.const 1))) (br $yLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1))) (br $bLoop)))
  )

  ;; Y = A^T M A for every tile, from the a * a products M (element (p, t, ch) at p * sP + t * sT +
  ;; ch), plus bias[ch] when bias is not 0, then the relu when relu is 1, into out (NHWC [n, oh, ow,
  ;; c]); the part of a tile past the output's edge is dropped.
  (func (export "winograd_output")
    (param $mm i32) (param $out i32) (param $bias i32) (param $n i32) (param $oh i32) (param $ow i32)
    (param $c i32) (param $tilesY i32) (param $tilesX i32) (param $m i32) (param $relu i32)
    (param $sP i32) (param $sT i32) (param $scratch i32)
    (local $a i32) (local $b i32) (local $ty i32) (local $tx i32) (local $t i32) (local $ch i32)
    (local $r i32) (local $k i32) (local $y i32) (local $valid i32) (local $pixel i32) (local $tileRow i32)
    (local $mid i32) (local $in i32) (local $is i32) (local $o i32) (local $os i32) (local $last i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $x4 v128) (local $x5 v128)
    (local $p v128) (local $q v128) (local $bv v128) (local $y0 v128) (local $y1 v128) (local $y2 v128) (local $y3 v128)
    (local.set $a (i32.add (local.get $m) (i32.const 2)))
    (local.set $pixel (i32.shl (local.get $c) (i32.const 2)))
    (local.set $tileRow (i32.mul (local.get $m) (local.get $pixel)))
    (local.set $mid (i32.add (local.get $scratch) (i32.mul (local.get $pixel) (i32.const 36))))
    (local.set $t (i32.const 0))
    (local.set $b (i32.const 0))
    (block $bEnd (loop $bLoop (br_if $bEnd (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $ty (i32.const 0))
      (block $yEnd (loop $yLoop (br_if $yEnd (i32.ge_u (local.get $ty) (local.get $tilesY)))
        (local.set $tx (i32.const 0))
        (block $xEnd (loop $xLoop (br_if $xEnd (i32.ge_u (local.get $tx) (local.get $tilesX)))
          (local.set $ch (i32.const 0))
          (block $cEnd (loop $cLoop (br_if $cEnd (i32.ge_u (local.get $ch) (local.get $c)))
            (local.set $bv (v128.const i32x4 0 0 0 0))
            (if (local.get $bias) (then
              (local.set $bv (v128.load (i32.add (local.get $bias) (i32.shl (local.get $ch) (i32.const 2)))))))
            ;; a + m passes of the 1-D transform A^T: pass j < a takes column j of M (straight
            ;; from the products) into column j of mid (m rows of a); pass a + r takes row r of mid
            ;; into row r of the tile in the scratch area, plus the bias, through the relu.
            (local.set $k (i32.const 0))
            (block $kEnd (loop $kLoop (br_if $kEnd (i32.ge_u (local.get $k) (i32.add (local.get $a) (local.get $m))))
              (local.set $last (i32.ge_u (local.get $k) (local.get $a)))
              (if (local.get $last)
                (then
                  (local.set $r (i32.sub (local.get $k) (local.get $a)))
                  (local.set $in (i32.add (local.get $mid) (i32.shl (i32.mul (local.get $r) (local.get $a)) (i32.const 4))))
                  (local.set $is (i32.const 16))
                  (local.set $o (i32.add (i32.add (local.get $scratch) (i32.mul (local.get $r) (local.get $tileRow)))
                    (i32.shl (local.get $ch) (i32.const 2))))
                  (local.set $os (local.get $pixel)))
                (else
                  (local.set $in (i32.add (local.get $mm) (i32.shl (i32.add (i32.add
                    (i32.mul (local.get $k) (local.get $sP)) (i32.mul (local.get $t) (local.get $sT))) (local.get $ch)) (i32.const 2))))
                  (local.set $is (i32.shl (i32.mul (local.get $a) (local.get $sP)) (i32.const 2)))
                  (local.set $o (i32.add (local.get $mid) (i32.shl (local.get $k) (i32.const 4))))
                  (local.set $os (i32.shl (local.get $a) (i32.const 4)))))
              (local.set $x0 (v128.load (local.get $in)))
              (local.set $x1 (v128.load (i32.add (local.get $in) (local.get $is))))
              (local.set $x2 (v128.load (i32.add (local.get $in) (i32.shl (local.get $is) (i32.const 1)))))
              (local.set $x3 (v128.load (i32.add (local.get $in) (i32.mul (local.get $is) (i32.const 3)))))
              (if (i32.eq (local.get $m) (i32.const 4))
                (then
                  (local.set $x4 (v128.load (i32.add (local.get $in) (i32.shl (local.get $is) (i32.const 2)))))
                  (local.set $x5 (v128.load (i32.add (local.get $in) (i32.mul (local.get $is) (i32.const 5)))))
                  ;; A^T of F(4x4, 3x3): with p = x1 + x2, q = x3 + x4 and the differences.
                  (local.set $p (f32x4.add (local.get $x1) (local.get $x2)))
                  (local.set $q (f32x4.add (local.get $x3) (local.get $x4)))
                  (local.set $y0 (f32x4.add (f32x4.add (local.get $x0) (local.get $p)) (local.get $q)))
                  (local.set $y2 (f32x4.add (local.get $p) (f32x4.mul (v128.const f32x4 4 4 4 4) (local.get $q))))
                  (local.set $p (f32x4.sub (local.get $x1) (local.get $x2)))
                  (local.set $q (f32x4.sub (local.get $x3) (local.get $x4)))
                  (local.set $y1 (f32x4.add (local.get $p) (f32x4.mul (v128.const f32x4 2 2 2 2) (local.get $q))))
                  (local.set $y3 (f32x4.add (f32x4.add (local.get $p) (f32x4.mul (v128.const f32x4 8 8 8 8) (local.get $q))) (local.get $x5))))
                (else
                  ;; A^T of F(2x2, 3x3).
                  (local.set $y0 (f32x4.add (f32x4.add (local.get $x0) (local.get $x1)) (local.get $x2)))
                  (local.set $y1 (f32x4.sub (f32x4.sub (local.get $x1) (local.get $x2)) (local.get $x3)))))
              (if (local.get $last) (then
                (if (local.get $bias) (then
                  (local.set $y0 (f32x4.add (local.get $y0) (local.get $bv)))
                  (local.set $y1 (f32x4.add (local.get $y1) (local.get $bv)))
                  (local.set $y2 (f32x4.add (local.get $y2) (local.get $bv)))
                  (local.set $y3 (f32x4.add (local.get $y3) (local.get $bv)))))
                (if (local.get $relu) (then
                  (local.set $y0 (f32x4.max (local.get $y0) (v128.const f32x4 0 0 0 0)))
                  (local.set $y1 (f32x4.max (local.get $y1) (v128.const f32x4 0 0 0 0)))
                  (local.set $y2 (f32x4.max (local.get $y2) (v128.const f32x4 0 0 0 0)))
                  (local.set $y3 (f32x4.max (local.get $y3) (v128.const f32x4 0 0 0 0)))))))
              (v128.store (local.get $o) (local.get $y0))
              (v128.store (i32.add (local.get $o) (local.get $os)) (local.get $y1))
              (if (i32.eq (local.get $m) (i32.const 4)) (then
                (v128.store (i32.add (local.get $o) (i32.shl (local.get $os) (i32.const 1))) (local.get $y2))
                (v128.store (i32.add (local.get $o) (i32.mul (local.get $os) (i32.const 3))) (local.get $y3))))
              (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $kLoop)))
            (local.set $ch (i32.add (local.get $ch) (i32.const 4))) (br $cLoop)))
          ;; The tile's rows inside the output, each the pixels inside it, in one copy.
          (local.set $valid (i32.sub (local.get $ow) (i32.mul (local.get $tx) (local.get $m))))
          (if (i32.gt_s (local.get $valid) (local.get $m)) (then (local.set $valid (local.get $m))))
          (local.set $r (i32.const 0))
          (block $rEnd (loop $rLoop (br_if $rEnd (i32.ge_u (local.get $r) (local.get $m)))
            (local.set $y (i32.add (i32.mul (local.get $ty) (local.get $m)) (local.get $r)))
            (if (i32.lt_u (local.get $y) (local.get $oh)) (then
              (memory.copy
                (i32.add (local.get $out) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $oh)) (local.get $y)) (local.get $ow))
                  (i32.mul (local.get $tx) (local.get $m))) (local.get $pixel)))
                (i32.add (local.get $scratch) (i32.mul (local.get $r) (local.get $tileRow)))
                (i32.mul (local.get $valid) (local.get $pixel)))))
            (local.set $r (i32.add (local.get $r) (i32.const 1))) (br $rLoop)))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (local.set $tx (i32.add (local.get $tx) (i32.const 1))) (br $xLoop)))
        (local.set $ty (i32.add (local.get $ty) (i32.const 1))) (br $yLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1))) (br $bLoop)))
  )

  ;; A dY A^T for every m x m tile dY of the output's gradient dz (NHWC [n, oh, ow, c], 0 past its
  ;; edge), written to g (element (p, t, ch) at p * sP + t * sT + ch): what the filter gradient
  ;; multiplies with the input's transformed tiles.
  (func (export "winograd_gradient")
    (param $dz i32) (param $g i32) (param $n i32) (param $oh i32) (param $ow i32) (param $c i32)
    (param $tilesY i32) (param $tilesX i32) (param $m i32) (param $sP i32) (param $sT i32) (param $scratch i32)
    (local $a i32) (local $b i32) (local $ty i32) (local $tx i32) (local $t i32) (local $ch i32)
    (local $r i32) (local $s i32) (local $k i32) (local $y i32) (local $valid i32) (local $pixel i32) (local $tileRow i32)
    (local $dst i32) (local $mid i32) (local $in i32) (local $is i32) (local $o i32) (local $os i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $p v128) (local $q v128)
    (local.set $a (i32.add (local.get $m) (i32.const 2)))
    (local.set $pixel (i32.shl (local.get $c) (i32.const 2)))
    (local.set $tileRow (i32.mul (local.get $m) (local.get $pixel)))
    (local.set $mid (i32.add (local.get $scratch) (i32.mul (local.get $pixel) (i32.const 36))))
    (local.set $t (i32.const 0))
    (local.set $b (i32.const 0))
    (block $bEnd (loop $bLoop (br_if $bEnd (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $ty (i32.const 0))
      (block $yEnd (loop $yLoop (br_if $yEnd (i32.ge_u (local.get $ty) (local.get $tilesY)))
        (local.set $tx (i32.const 0))
        (block $xEnd (loop $xLoop (br_if $xEnd (i32.ge_u (local.get $tx) (local.get $tilesX)))
          ;; The tile's m x m gradients into the scratch area, row by row, 0 past the edge.
          (local.set $valid (i32.sub (local.get $ow) (i32.mul (local.get $tx) (local.get $m))))
          (if (i32.gt_s (local.get $valid) (local.get $m)) (then (local.set $valid (local.get $m))))
          (local.set $r (i32.const 0))
          (block $gEnd (loop $gLoop (br_if $gEnd (i32.ge_u (local.get $r) (local.get $m)))
            (local.set $y (i32.add (i32.mul (local.get $ty) (local.get $m)) (local.get $r)))
            (local.set $dst (i32.add (local.get $scratch) (i32.mul (local.get $r) (local.get $tileRow))))
            (if (i32.ge_u (local.get $y) (local.get $oh))
              (then (memory.fill (local.get $dst) (i32.const 0) (local.get $tileRow)))
              (else
                (memory.copy (local.get $dst)
                  (i32.add (local.get $dz) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $oh)) (local.get $y)) (local.get $ow))
                    (i32.mul (local.get $tx) (local.get $m))) (local.get $pixel)))
                  (i32.mul (local.get $valid) (local.get $pixel)))
                (memory.fill (i32.add (local.get $dst) (i32.mul (local.get $valid) (local.get $pixel))) (i32.const 0)
                  (i32.mul (i32.sub (local.get $m) (local.get $valid)) (local.get $pixel)))))
            (local.set $r (i32.add (local.get $r) (i32.const 1))) (br $gLoop)))
          (local.set $ch (i32.const 0))
          (block $cEnd (loop $cLoop (br_if $cEnd (i32.ge_u (local.get $ch) (local.get $c)))
            ;; m + a passes of the 1-D transform A: pass r < m takes row r of the tile (m values)
            ;; into row r of mid (a values); pass m + j takes column j of mid into the a matrices of
            ;; column j (p = i * a + j) of g.
            (local.set $k (i32.const 0))
            (block $kEnd (loop $kLoop (br_if $kEnd (i32.ge_u (local.get $k) (i32.add (local.get $m) (local.get $a))))
              (if (i32.lt_u (local.get $k) (local.get $m))
                (then
                  (local.set $in (i32.add (i32.add (local.get $scratch) (i32.mul (local.get $k) (local.get $tileRow)))
                    (i32.shl (local.get $ch) (i32.const 2))))
                  (local.set $is (local.get $pixel))
                  (local.set $o (i32.add (local.get $mid) (i32.shl (i32.mul (local.get $k) (local.get $a)) (i32.const 4))))
                  (local.set $os (i32.const 16)))
                (else
                  (local.set $s (i32.sub (local.get $k) (local.get $m)))
                  (local.set $in (i32.add (local.get $mid) (i32.shl (local.get $s) (i32.const 4))))
                  (local.set $is (i32.shl (local.get $a) (i32.const 4)))
                  (local.set $o (i32.add (local.get $g) (i32.shl (i32.add (i32.add
                    (i32.mul (local.get $s) (local.get $sP)) (i32.mul (local.get $t) (local.get $sT))) (local.get $ch)) (i32.const 2))))
                  (local.set $os (i32.shl (i32.mul (local.get $a) (local.get $sP)) (i32.const 2)))))
              (local.set $x0 (v128.load (local.get $in)))
              (local.set $x1 (v128.load (i32.add (local.get $in) (local.get $is))))
              (if (i32.eq (local.get $m) (i32.const 4))
                (then
                  (local.set $x2 (v128.load (i32.add (local.get $in) (i32.shl (local.get $is) (i32.const 1)))))
                  (local.set $x3 (v128.load (i32.add (local.get $in) (i32.mul (local.get $is) (i32.const 3)))))
                  ;; A of F(4x4, 3x3): with p = x0 + x2, q = x1 + x3, then x0 + 4 x2 and 2 (x1 + 4 x3).
                  (local.set $p (f32x4.add (local.get $x0) (local.get $x2)))
                  (local.set $q (f32x4.add (local.get $x1) (local.get $x3)))
                  (v128.store (local.get $o) (local.get $x0))
                  (v128.store (i32.add (local.get $o) (local.get $os)) (f32x4.add (local.get $p) (local.get $q)))
                  (v128.store (i32.add (local.get $o) (i32.shl (local.get $os) (i32.const 1))) (f32x4.sub (local.get $p) (local.get $q)))
                  (local.set $p (f32x4.add (local.get $x0) (f32x4.mul (v128.const f32x4 4 4 4 4) (local.get $x2))))
                  (local.set $q (f32x4.mul (v128.const f32x4 2 2 2 2)
                    (f32x4.add (local.get $x1) (f32x4.mul (v128.const f32x4 4 4 4 4) (local.get $x3)))))
                  (v128.store (i32.add (local.get $o) (i32.mul (local.get $os) (i32.const 3))) (f32x4.add (local.get $p) (local.get $q)))
                  (v128.store (i32.add (local.get $o) (i32.shl (local.get $os) (i32.const 2))) (f32x4.sub (local.get $p) (local.get $q)))
                  (v128.store (i32.add (local.get $o) (i32.mul (local.get $os) (i32.const 5))) (local.get $x3)))
                (else
                  ;; A of F(2x2, 3x3).
                  (v128.store (local.get $o) (local.get $x0))
                  (v128.store (i32.add (local.get $o) (local.get $os)) (f32x4.add (local.get $x0) (local.get $x1)))
                  (v128.store (i32.add (local.get $o) (i32.shl (local.get $os) (i32.const 1))) (f32x4.sub (local.get $x0) (local.get $x1)))
                  (v128.store (i32.add (local.get $o) (i32.mul (local.get $os) (i32.const 3))) (f32x4.neg (local.get $x1)))))
              (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $kLoop)))
            (local.set $ch (i32.add (local.get $ch) (i32.const 4))) (br $cLoop)))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (local.set $tx (i32.add (local.get $tx) (i32.const 1))) (br $xLoop)))
        (local.set $ty (i32.add (local.get $ty) (i32.const 1))) (br $yLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1))) (br $bLoop)))
  )
)
