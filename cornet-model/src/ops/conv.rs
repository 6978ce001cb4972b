//! `nn.Conv2d` (dilation 1, groups 1) on the CPU as matrix products: im2col + GEMM forward,
//! GEMM + col2im for the input gradient, im2col + GEMM for the weight gradient.
//!
//! candle's own CPU convolution backward goes through a direct `conv_transpose2d` loop and a
//! convolution with batch and channels swapped, several times slower than this. Samples are
//! processed in parallel, each with its own column buffer, so no full-batch im2col exists and
//! nothing is kept between forward and backward but the input.

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// `x` [N, C, H, W] convolved with `weight` [O, C, k, k] at `stride` with zero `padding`,
/// plus `bias` `[O]` when given.
///
/// On the CPU in f32 this is the GEMM op below, with the bias written into the output before
/// the product accumulates onto it and its gradient summed in the same backward pass (a
/// separate broadcast add costs two extra passes over the activation forward and three
/// backward). Other dtypes on the CPU go through it in f32 (rounded inputs, f32 accumulation
/// and a rounded output, as tensor cores compute bf16). On CUDA it is cuDNN's forward and
/// backward with the `cudnn` feature (see `conv_cudnn`), else candle's conv2d.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    // Whichever path the CPU takes: candle's CPU matmul has no bf16 either.
    if x.device().is_cpu() && x.dtype() != DType::F32 {
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        let bias = bias.map(f32).transpose()?;
        let y = conv2d(&f32(x)?, &f32(weight)?, bias.as_ref(), stride, padding)?;
        return y.to_dtype(x.dtype());
    }
    if !super::on_cpu_kernels(x) {
        let y = device_conv2d(x, weight, stride, padding)?;
        return match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        };
    }
    let op = Conv2d { stride, padding };
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// The convolution without bias on a GPU: cuDNN forward and backward where built with it,
/// else candle's.
fn device_conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() {
        return super::conv_cudnn::conv2d(x, weight, stride, padding);
    }
    x.conv2d(weight, padding, stride, 1, 1)
}

#[derive(Debug, Clone, Copy)]
struct Conv2d {
    stride: usize,
    padding: usize,
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out_height: usize,
    out_width: usize,
}

impl Geometry {
    fn new(op: &Conv2d, x: &Shape, w: &Shape) -> Result<Self> {
        let (batch, in_channels, height, width) = x.dims4()?;
        let (out_channels, w_in, kh, kw) = w.dims4()?;
        if w_in != in_channels || kh != kw {
            candle_core::bail!("conv2d: input {x:?} does not fit square kernel {w:?}")
        }
        let out = |n: usize| -> Result<usize> {
            let padded = n + 2 * op.padding;
            if padded < kh {
                candle_core::bail!("conv2d: input {x:?} is smaller than kernel {w:?}")
            }
            Ok((padded - kh) / op.stride + 1)
        };
        Ok(Geometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: kh,
            stride: op.stride,
            padding: op.padding,
            out_height: out(height)?,
            out_width: out(width)?,
        })
    }

    /// Rows of the column matrix: one per (channel, kernel row, kernel column).
    fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    fn out_pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    fn in_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn out_len(&self) -> usize {
        self.out_channels * self.out_pixels()
    }

    fn out_shape(&self) -> Shape {
        Shape::from((
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ))
    }

    /// A 1x1 convolution without stride or padding needs no column matrix: the input is one.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Output positions `o` along one axis whose input `o * stride + tap - padding` lies in
    /// `0..len`.
    fn valid_outputs(&self, tap: usize, len: usize, out_len: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let first = (p - tap as isize).max(0);
        let lo = ((first + s - 1) / s) as usize;
        let last = len as isize - 1 + p - tap as isize;
        let hi = if last < 0 { 0 } else { (last / s + 1) as usize };
        lo.min(out_len)..hi.min(out_len).max(lo.min(out_len))
    }

    /// Visits every (column-matrix row, output row) pair with the input row it reads and the
    /// ranges of output columns that fall inside the input; the shared walk of im2col and col2im.
    fn for_each_patch_row(&self, mut visit: impl FnMut(PatchRow)) {
        let k = self.kernel;
        for c in 0..self.in_channels {
            for ky in 0..k {
                let rows = self.valid_outputs(ky, self.height, self.out_height);
                for kx in 0..k {
                    let cols = self.valid_outputs(kx, self.width, self.out_width);
                    let patch = (c * k + ky) * k + kx;
                    for oy in 0..self.out_height {
                        // A tap whose every column falls in the padding reads no input.
                        let reads = rows.contains(&oy) && !cols.is_empty();
                        let input_row = reads.then(|| {
                            c * self.height * self.width
                                + (oy * self.stride + ky - self.padding) * self.width
                        });
                        visit(PatchRow {
                            col_offset: patch * self.out_pixels() + oy * self.out_width,
                            input_row,
                            cols: cols.clone(),
                            first_input_col: (cols.start * self.stride + kx)
                                .wrapping_sub(self.padding),
                        });
                    }
                }
            }
        }
    }

    /// Fills `col` [patch_len, out_pixels] from one sample `x` [C, H, W].
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let (ow, s) = (self.out_width, self.stride);
        self.for_each_patch_row(|row| {
            let dst = &mut col[row.col_offset..row.col_offset + ow];
            match row.input_row {
                None => dst.fill(0.0),
                Some(base) => {
                    dst[..row.cols.start].fill(0.0);
                    dst[row.cols.end..].fill(0.0);
                    let src = x[base + row.first_input_col..].iter().step_by(s);
                    for (d, v) in dst[row.cols.clone()].iter_mut().zip(src) {
                        *d = *v;
                    }
                }
            }
        });
    }

    /// Adds `col` [patch_len, out_pixels] back onto one sample's input gradient `dx` [C, H, W].
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        let s = self.stride;
        self.for_each_patch_row(|row| {
            if let Some(base) = row.input_row {
                let src = &col[row.col_offset + row.cols.start..row.col_offset + row.cols.end];
                let dst = dx[base + row.first_input_col..].iter_mut().step_by(s);
                for (d, v) in dst.zip(src) {
                    *d += v;
                }
            }
        });
    }

    /// Samples per parallel task: one contiguous run per thread, so that each thread
    /// allocates its column buffer (and weight-gradient partial sum) once.
    fn samples_per_task(&self) -> usize {
        self.batch.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// One sample's column matrix; empty for pointwise convolutions, which need none.
    fn column_buffer(&self) -> Vec<f32> {
        let len = if self.is_pointwise() {
            0
        } else {
            self.patch_len() * self.out_pixels()
        };
        vec![0f32; len]
    }

    /// Parallelism for the GEMMs: across samples when there are enough of them, else inside
    /// each product.
    fn gemm_parallelism(&self) -> Parallelism {
        if self.batch >= rayon::current_num_threads() {
            Parallelism::None
        } else {
            Parallelism::Rayon(0)
        }
    }
}

struct PatchRow {
    /// Where this row of output columns starts in the column matrix.
    col_offset: usize,
    /// Offset of the input row read, or `None` when it lies in the padding.
    input_row: Option<usize>,
    /// Output columns that read inside the input.
    cols: std::ops::Range<usize>,
    /// Input column read by `cols.start`.
    first_input_col: usize,
}

/// A matrix for [`matmul`]: a row-major buffer, or the transpose of one.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Operand<'a> {
    /// The row-major `rows x cols` matrix in `data`.
    fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Operand {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `rows x cols` matrix in `data`.
    fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Operand {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols,
        }
    }

    fn fits(&self) -> bool {
        self.data.len() > (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
    }
}

/// `dst (+)= lhs · rhs`, `dst` row-major.
fn matmul(dst: &mut [f32], accumulate: bool, lhs: Operand, rhs: Operand, parallelism: Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(rhs.rows == k && dst.len() >= m * n && lhs.fits() && rhs.fits());
    // SAFETY: the assertion above keeps every index gemm computes from these strides in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

impl Conv2d {
    /// The output [N, O, OH, OW] of one convolution, bias included.
    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
        let mut out = vec![0f32; g.batch * g.out_len()];
        let parallelism = g.gemm_parallelism();
        let per_task = g.samples_per_task();
        out.par_chunks_mut(per_task * g.out_len())
            .zip(x.par_chunks(per_task * g.in_len()))
            .for_each(|(out, x)| {
                let mut col = g.column_buffer();
                for (out, x) in out.chunks_mut(g.out_len()).zip(x.chunks(g.in_len())) {
                    if let Some(bias) = bias {
                        for (plane, b) in out.chunks_mut(g.out_pixels()).zip(bias) {
                            plane.fill(*b);
                        }
                    }
                    let col: &[f32] = if g.is_pointwise() {
                        x
                    } else {
                        g.im2col(x, &mut col);
                        &col
                    };
                    matmul(
                        out,
                        bias.is_some(),
                        Operand::rows(w, g.out_channels, g.patch_len()),
                        Operand::rows(col, g.patch_len(), g.out_pixels()),
                        parallelism,
                    );
                }
            });
        out
    }

    /// The gradients of `x` (when it needs one), of the weight and of the bias (when there is
    /// one), from the output gradient `grad`, in one pass over the samples.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        // The image (a leaf that no variable produced) needs no gradient: skip that half.
        let op = ConvBackward {
            forward: *self,
            input_grad: x.track_op(),
            bias_grad: bias.is_some(),
        };
        let grads = x.apply_op3_no_bwd(w, &grad.contiguous()?, &op)?;
        let dx_len = if op.input_grad { x.elem_count() } else { 0 };
        let dw = grads
            .narrow(0, dx_len, w.elem_count())?
            .reshape(w.shape())?;
        let dx = op
            .input_grad
            .then(|| grads.narrow(0, 0, dx_len)?.reshape(x.shape()))
            .transpose()?;
        let db = bias
            .map(|b| grads.narrow(0, dx_len + w.elem_count(), b.elem_count()))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-gemm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(self, xl.shape(), wl.shape())?;
        let x = contiguous_f32(xs, xl, "conv2d input")?;
        let w = contiguous_f32(ws, wl, "conv2d weight")?;
        Ok((CpuStorage::F32(self.forward(x, w, None, &g)), g.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, grad)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-gemm-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(self, xl.shape(), wl.shape())?;
        let x = contiguous_f32(xs, xl, "conv2d input")?;
        let w = contiguous_f32(ws, wl, "conv2d weight")?;
        let bias = contiguous_f32(bs, bl, "conv2d bias")?;
        if bias.len() != g.out_channels {
            candle_core::bail!(
                "conv2d: bias of {} elements for {} output channels",
                bias.len(),
                g.out_channels
            )
        }
        let out = self.forward(x, w, Some(bias), &g);
        Ok((CpuStorage::F32(out), g.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.backward(x, w, Some(b), grad)?;
        Ok((dx, Some(dw), db))
    }
}

/// The gradients of [`Conv2d`] in one pass over the samples, returned as one flat tensor
/// `[dx (or nothing), dw, db (or nothing)]` since a custom op has one output.
struct ConvBackward {
    forward: Conv2d,
    input_grad: bool,
    bias_grad: bool,
}

impl CustomOp3 for ConvBackward {
    fn name(&self) -> &'static str {
        "conv2d-gemm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(&self.forward, xl.shape(), wl.shape())?;
        let x = contiguous_f32(xs, xl, "conv2d input")?;
        let w = contiguous_f32(ws, wl, "conv2d weight")?;
        let dy = contiguous_f32(gs, gl, "conv2d output gradient")?;
        let parallelism = g.gemm_parallelism();
        let dw_len = g.out_channels * g.patch_len();
        let db_len = if self.bias_grad { g.out_channels } else { 0 };
        // Without an input gradient each sample gets a one-element placeholder, so that the
        // parallel walk over samples keeps one shape.
        let dx_chunk = if self.input_grad { g.in_len() } else { 1 };
        let mut dx = vec![0f32; g.batch * dx_chunk];
        let per_task = g.samples_per_task();
        // Each task's [dw, db] partial sums, added up after.
        let partials: Vec<Vec<f32>> = x
            .par_chunks(per_task * g.in_len())
            .zip(dy.par_chunks(per_task * g.out_len()))
            .zip(dx.par_chunks_mut(per_task * dx_chunk))
            .map(|((xs, dys), dxs)| {
                let mut dwb = vec![0f32; dw_len + db_len];
                let (dw, db) = dwb.split_at_mut(dw_len);
                let mut col = g.column_buffer();
                let samples = xs.chunks(g.in_len()).zip(dys.chunks(g.out_len()));
                for ((x, dy), dx) in samples.zip(dxs.chunks_mut(dx_chunk)) {
                    for (db, plane) in db.iter_mut().zip(dy.chunks(g.out_pixels())) {
                        *db += plane.iter().sum::<f32>();
                    }
                    // dW += dY · colᵀ
                    let cols: &[f32] = if g.is_pointwise() {
                        x
                    } else {
                        g.im2col(x, &mut col);
                        &col
                    };
                    matmul(
                        dw,
                        true,
                        Operand::rows(dy, g.out_channels, g.out_pixels()),
                        Operand::transposed(cols, g.patch_len(), g.out_pixels()),
                        parallelism,
                    );
                    if self.input_grad {
                        // dcol = Wᵀ · dY, folded back onto the input.
                        let (dcol, accumulate): (&mut [f32], bool) = if g.is_pointwise() {
                            (dx, true)
                        } else {
                            (&mut col, false)
                        };
                        matmul(
                            dcol,
                            accumulate,
                            Operand::transposed(w, g.out_channels, g.patch_len()),
                            Operand::rows(dy, g.out_channels, g.out_pixels()),
                            parallelism,
                        );
                        if !g.is_pointwise() {
                            g.col2im(&col, dx);
                        }
                    }
                }
                dwb
            })
            .collect();
        let mut dwb = vec![0f32; dw_len + db_len];
        for partial in &partials {
            dwb.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
        }
        let mut flat = if self.input_grad { dx } else { Vec::new() };
        flat.extend_from_slice(&dwb);
        let len = flat.len();
        Ok((CpuStorage::F32(flat), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::max_abs_diff;
    use super::*;
    use candle_core::{Device, Var};

    fn scale(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1.0)
    }

    /// `<a, b>` in f64, and `sum |a_i b_i|`: the scale its rounding errors grow with, which
    /// stays large when the terms cancel and the dot itself is near zero.
    fn dot(a: &Tensor, b: &Tensor) -> (f64, f64) {
        let products = (a.to_dtype(DType::F64).unwrap() * b.to_dtype(DType::F64).unwrap()).unwrap();
        let total = products.sum_all().unwrap().to_scalar::<f64>().unwrap();
        let scale = products
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        (total, scale)
    }

    /// The forward against candle's own conv2d, and both gradients by the adjoint identity
    /// `<conv(x, w), y> = <x, dx(y)> = <w, dw(y)>` with the forward computed by candle in f64, on
    /// awkward shapes. (candle's own backward cannot serve as the reference: it fails on odd
    /// sizes with stride 2.)
    #[test]
    fn matches_candle_on_random_shapes() -> Result<()> {
        let cases = [
            // (batch, in, out, h, w, kernel, stride, padding)
            (2, 3, 8, 17, 13, 7, 2, 3),
            (1, 4, 5, 9, 9, 3, 1, 1),
            (3, 6, 4, 8, 11, 1, 1, 0),
            (2, 6, 4, 8, 11, 1, 2, 0),
            (2, 5, 7, 10, 7, 3, 2, 1),
            (1, 2, 3, 5, 6, 3, 1, 0),
            (4, 8, 16, 7, 7, 3, 1, 1),
            // Inputs smaller than the kernel's reach, where whole taps fall in the padding
            // (PyTorch takes CORnet's V1 on 1x1 and 2x2 images).
            (1, 3, 4, 1, 1, 7, 2, 3),
            (2, 3, 4, 2, 2, 7, 2, 3),
            (1, 2, 3, 2, 3, 3, 2, 1),
        ];
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1., shape, &Device::Cpu);
        let f64 = |t: &Tensor| t.to_dtype(DType::F64);
        for (n, c, o, h, w, k, s, p) in cases {
            let what = format!("case {:?}", (n, c, o, h, w, k, s, p));
            let x = Var::from_tensor(&randn(&[n, c, h, w])?)?;
            let weight = Var::from_tensor(&randn(&[o, c, k, k])?)?;
            let bias = Var::from_tensor(&randn(&[o])?)?;
            let ours = conv2d(x.as_tensor(), weight.as_tensor(), Some(&bias), s, p)?;
            let reference = x
                .as_tensor()
                .conv2d(weight.as_tensor(), p, s, 1, 1)?
                .broadcast_add(&bias.reshape((1, o, 1, 1))?)?;
            assert_eq!(ours.dims(), reference.dims(), "{what}");
            assert!(
                max_abs_diff(&ours, &reference) <= 1e-4 * scale(&reference),
                "{what} forward"
            );

            let y = randn(ours.dims())?;
            let grads = (ours * &y)?.sum_all()?.backward()?;
            let dx = grads.get(x.as_tensor()).unwrap();
            let dw = grads.get(weight.as_tensor()).unwrap();
            let db = grads.get(bias.as_tensor()).unwrap();
            let y_sums = y.sum((0, 2, 3))?;
            assert!(
                max_abs_diff(db, &y_sums) <= 1e-4 * scale(&y_sums),
                "{what} bias gradient"
            );
            for _ in 0..3 {
                let (x2, w2) = (randn(&[n, c, h, w])?, randn(&[o, c, k, k])?);
                for (name, lhs, rhs) in [
                    (
                        "input",
                        dot(
                            &f64(&x2)?.conv2d(&f64(weight.as_tensor())?, p, s, 1, 1)?,
                            &y,
                        ),
                        dot(&x2, dx),
                    ),
                    (
                        "weight",
                        dot(&f64(x.as_tensor())?.conv2d(&f64(&w2)?, p, s, 1, 1)?, &y),
                        dot(&w2, dw),
                    ),
                ] {
                    // Relative to the terms' magnitudes, not to the dot: with random signs
                    // the dot can cancel to near zero while f32 rounding stays at their scale
                    // (observed: up to 5e-8 of it).
                    let err = (lhs.0 - rhs.0).abs() / lhs.1.max(rhs.1);
                    assert!(err <= 1e-6, "{what} {name} gradient: {lhs:?} vs {rhs:?}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn an_input_that_needs_no_gradient_gets_none() -> Result<()> {
        let image = Tensor::randn(0f32, 1., (2, 3, 8, 8), &Device::Cpu)?;
        let weight = Var::randn(0f32, 1., (4, 3, 3, 3), &Device::Cpu)?;
        let grads = conv2d(&image, weight.as_tensor(), None, 1, 1)?
            .sum_all()?
            .backward()?;
        assert!(grads.get(&image).is_none());
        assert!(grads.get(weight.as_tensor()).is_some());
        Ok(())
    }
}
