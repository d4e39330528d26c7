//! `Operator`: the matrix-free linear operators H of image inverse problems
//! (`<lgd/operator.h>`, liblgd >= 0.5): average pooling, antialiased bicubic
//! downsampling, an inpainting mask and a Gaussian blur, on images laid out
//! [channels][height][width] (CHW, flat and row-major). An [`Operator`] is a plain
//! description (no C object); [`Operator::apply`] runs the library's kernels and
//! [`crate::Loss::operator`] makes the loss |y - H x|^2 / (2 s2) over it.
use std::ptr;

use lgd_sys as sys;

use crate::context::Context;
use crate::error::{invalid, Result, Status};
use crate::tensor::Tensor;
use crate::util::{len_i64, rows_of};

/// Which linear operator H.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorKind {
    /// The means of non-overlapping factor x factor blocks.
    AvgPool,
    /// Antialiased bicubic downsampling by the factor (Keys, a = -0.5), as PyTorch's
    /// `F.interpolate(..., mode='bicubic', antialias=True)`.
    BicubicDown,
    /// y = mask * x elementwise (H^T = H).
    Mask,
    /// A separable Gaussian blur with reflect padding.
    Blur,
}

impl OperatorKind {
    fn raw(self) -> sys::lgd_operator_kind {
        match self {
            OperatorKind::AvgPool => sys::LGD_OPERATOR_AVG_POOL,
            OperatorKind::BicubicDown => sys::LGD_OPERATOR_BICUBIC_DOWN,
            OperatorKind::Mask => sys::LGD_OPERATOR_MASK,
            OperatorKind::Blur => sys::LGD_OPERATOR_BLUR,
        }
    }
}

/// A linear operator on images [channels][height][width] (`lgd_operator_options`).
/// Build one with [`Operator::avg_pool`], [`Operator::bicubic_down`],
/// [`Operator::mask`] or [`Operator::blur`] (then [`Operator::blur_radius`]); the
/// library checks the values when the operator is used ([`Status::InvalidArgument`]
/// with its message). The fields a kind does not use are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub kind: OperatorKind,
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    /// AvgPool, BicubicDown: >= 1, dividing height and width (default 2).
    pub factor: i32,
    /// Blur: the standard deviation in pixels, > 0 (default 1).
    pub blur_sigma: f32,
    /// Blur: taps each side, 1 to 4096, or 0 (default) for ceil(3 blur_sigma).
    pub blur_radius: i32,
    /// Mask: channels * height * width values laid out like x (copied by the library).
    pub mask: Option<Vec<f32>>,
}

impl Operator {
    fn with_kind(kind: OperatorKind, channels: i64, height: i64, width: i64) -> Operator {
        let mut o: sys::lgd_operator_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_operator_options_init(&mut o, sys::struct_size_of::<sys::lgd_operator_options>())
        };
        assert_eq!(st, sys::LGD_OK);
        Operator {
            kind,
            channels,
            height,
            width,
            factor: o.factor,
            blur_sigma: o.blur_sigma,
            blur_radius: o.blur_radius,
            mask: None,
        }
    }

    /// y[c][i][j] = the mean of the factor x factor block at (f i, f j):
    /// [channels][height / factor][width / factor].
    pub fn avg_pool(channels: i64, height: i64, width: i64, factor: i32) -> Operator {
        Operator { factor, ..Operator::with_kind(OperatorKind::AvgPool, channels, height, width) }
    }

    /// Antialiased bicubic downsampling by `factor` (PyTorch's rule; see the header).
    pub fn bicubic_down(channels: i64, height: i64, width: i64, factor: i32) -> Operator {
        Operator { factor, ..Operator::with_kind(OperatorKind::BicubicDown, channels, height, width) }
    }

    /// y = mask * x with `mask` of channels * height * width values (a mask shared by
    /// the channels repeated per channel).
    pub fn mask(channels: i64, height: i64, width: i64, mask: &[f32]) -> Operator {
        Operator {
            mask: Some(mask.to_vec()),
            ..Operator::with_kind(OperatorKind::Mask, channels, height, width)
        }
    }

    /// A Gaussian blur of standard deviation `sigma` pixels (radius ceil(3 sigma) unless
    /// set with [`Operator::blur_radius`]); y is shaped like x.
    pub fn blur(channels: i64, height: i64, width: i64, sigma: f32) -> Operator {
        Operator { blur_sigma: sigma, ..Operator::with_kind(OperatorKind::Blur, channels, height, width) }
    }

    /// The same operator with `radius` taps each side of the blur (0: automatic).
    pub fn blur_radius(mut self, radius: i32) -> Operator {
        self.blur_radius = radius;
        self
    }

    /// The C struct; its mask points into `self`. A mask of the wrong length is refused
    /// here (the library reads channels * height * width values and cannot check).
    pub(crate) fn to_raw(&self, what: &str) -> Result<sys::lgd_operator_options> {
        let mut o: sys::lgd_operator_options = unsafe { std::mem::zeroed() };
        unsafe { sys::lgd_operator_options_init(&mut o, sys::struct_size_of::<sys::lgd_operator_options>()) };
        o.kind = self.kind.raw();
        o.channels = self.channels;
        o.height = self.height;
        o.width = self.width;
        o.factor = self.factor;
        o.blur_sigma = self.blur_sigma;
        o.blur_radius = self.blur_radius;
        o.mask = ptr::null();
        if let Some(m) = &self.mask {
            let want =
                (self.channels.max(0) as u128) * (self.height.max(0) as u128) * (self.width.max(0) as u128);
            if m.len() as u128 != want {
                return Err(invalid(
                    Status::ShapeMismatch,
                    format!(
                        "{what}: the mask has {} values, the image {} x {} x {} = {want}",
                        m.len(),
                        self.channels,
                        self.height,
                        self.width
                    ),
                ));
            }
            o.mask = m.as_ptr();
        }
        Ok(o)
    }

    /// (dim, m): the length of x (channels * height * width) and of y = H x
    /// (`lgd_operator_dims()`, which checks the options).
    pub fn dims(&self, ctx: &Context) -> Result<(i64, i64)> {
        const W: &str = "Operator::dims";
        let o = self.to_raw(W)?;
        let (mut dim, mut m) = (0i64, 0i64);
        ctx.call(W, || unsafe { sys::lgd_operator_dims(ctx.as_raw(), &o, &mut dim, &mut m) })?;
        Ok((dim, m))
    }

    /// out = H x (or H^T x with `adjoint`) for every row of x (`lgd_operator_apply()`):
    /// x holds a whole number of rows of the input length (dim, or m for H^T), out as many
    /// rows of the output length; any shapes.
    pub fn apply(&self, ctx: &Context, adjoint: bool, x: &Tensor<'_>, out: &mut Tensor<'_>) -> Result<()> {
        const W: &str = "Operator::apply";
        let o = self.to_raw(W)?;
        ctx.call(W, || unsafe {
            sys::lgd_operator_apply(ctx.as_raw(), &o, adjoint as i32, x.as_raw(), out.as_raw())
        })
    }

    /// H x (or H^T x) of rows given as a slice: rows of dim (or m) floats in, rows of m
    /// (or dim) out.
    pub fn apply_slice(&self, ctx: &Context, adjoint: bool, x: &[f32]) -> Result<Vec<f32>> {
        const W: &str = "Operator::apply_slice";
        let (dim, m) = self.dims(ctx)?;
        let (n_in, n_out) = if adjoint { (m, dim) } else { (dim, m) };
        let rows = rows_of(W, "x", x.len(), n_in as usize, "rows of the operator's input length")?;
        let xt = Tensor::from_slice(ctx, &[len_i64(rows), n_in], x)?;
        let mut out = Tensor::new(ctx, &[len_i64(rows), n_out])?;
        self.apply(ctx, adjoint, &xt, &mut out)?;
        out.to_vec()
    }
}
