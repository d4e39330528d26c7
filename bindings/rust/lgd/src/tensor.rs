//! `Tensor`: float32 data on a context's backend, owned or over a Rust slice.
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use lgd_sys as sys;

use crate::context::{Backend, Context};
use crate::error::{invalid, Result, Status};
use crate::util::{checked_product, len_i64};

/// A float32 tensor of 1 to 4 dimensions (row-major; the first is the batch) on a
/// context's backend.
///
/// `Tensor<'static>` owns its memory ([`Tensor::new`], [`Tensor::from_slice`],
/// [`Tensor::from_vec`]); [`Tensor::wrap`] makes a `Tensor<'a>` over a `&'a mut [f32]`
/// without a copy, which cannot outlive the borrow. liblgd never keeps a reference to a
/// tensor passed to a call (conditions are copied), so the `Tensor` value is the only
/// owner and the wrapped slice is free again once it is dropped.
///
/// Not `Clone` (two handles would alias the data): [`Tensor::try_clone`] copies.
pub struct Tensor<'a> {
    raw: NonNull<sys::lgd_tensor>,
    ctx: Context,
    _data: PhantomData<&'a mut [f32]>,
}

unsafe extern "C" fn release_vec(user: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: user is the Box<Vec<f32>> given to lgd_tensor_wrap, released exactly once.
        drop(unsafe { Box::from_raw(user as *mut Vec<f32>) })
    });
}

fn check_shape(what: &str, shape: &[i64]) -> Result<usize> {
    if shape.is_empty() || shape.len() > sys::LGD_TENSOR_MAX_DIMS as usize {
        return Err(invalid(
            Status::InvalidArgument,
            format!("{what}: a tensor has 1 to {} dimensions, not {}", sys::LGD_TENSOR_MAX_DIMS, shape.len()),
        ));
    }
    if let Some(s) = shape.iter().find(|&&s| s <= 0) {
        return Err(invalid(Status::InvalidArgument, format!("{what}: shape {shape:?} has a size {s} <= 0")));
    }
    checked_product(shape)
        .ok_or_else(|| invalid(Status::OutOfMemory, format!("{what}: shape {shape:?} is too large")))
}

impl Tensor<'static> {
    /// A zero-filled tensor of this shape.
    pub fn new(ctx: &Context, shape: &[i64]) -> Result<Tensor<'static>> {
        let mut raw = ptr::null_mut();
        ctx.call("Tensor::new", || unsafe {
            sys::lgd_tensor_create(ctx.as_raw(), shape.len() as i32, shape.as_ptr(), &mut raw)
        })?;
        Ok(Tensor::adopt(ctx, raw))
    }

    /// A zero-filled [batch][dim] tensor.
    pub fn zeros_2d(ctx: &Context, batch: i64, dim: i64) -> Result<Tensor<'static>> {
        Tensor::new(ctx, &[batch, dim])
    }

    /// A tensor of this shape holding a copy of `data` (as many values as the shape has).
    pub fn from_slice(ctx: &Context, shape: &[i64], data: &[f32]) -> Result<Tensor<'static>> {
        let mut t = Tensor::new(ctx, shape)?;
        t.upload(data)?;
        Ok(t)
    }

    /// A tensor over `data` (moved in): zero-copy on the CPU backend, where the library
    /// reads and writes the vector in place and frees it with the tensor; a copy on a
    /// device backend.
    pub fn from_vec(ctx: &Context, shape: &[i64], mut data: Vec<f32>) -> Result<Tensor<'static>> {
        let numel = check_shape("Tensor::from_vec", shape)?;
        if data.len() != numel {
            return Err(invalid(
                Status::ShapeMismatch,
                format!("Tensor::from_vec: shape {shape:?} holds {numel} values, the vector {}", data.len()),
            ));
        }
        if ctx.backend() != Backend::Cpu {
            return Tensor::from_slice(ctx, shape, &data);
        }
        let ptr = data.as_mut_ptr();
        let user = Box::into_raw(Box::new(data));
        let mut raw = ptr::null_mut();
        let r = ctx.call("Tensor::from_vec", || unsafe {
            sys::lgd_tensor_wrap(
                ctx.as_raw(),
                sys::LGD_MEMORY_HOST,
                shape.len() as i32,
                shape.as_ptr(),
                ptr,
                Some(release_vec),
                user as *mut c_void,
                &mut raw,
            )
        });
        if let Err(e) = r {
            // not taken over on failure: the vector is still ours
            drop(unsafe { Box::from_raw(user) });
            return Err(e);
        }
        Ok(Tensor::adopt(ctx, raw))
    }
}

impl<'a> Tensor<'a> {
    /// A tensor over the caller's slice, without a copy (CPU backend; a device backend
    /// gives [`Status::Unsupported`]). `data` holds exactly as many values as the shape;
    /// the library reads and writes it in place, and the slice is back in the caller's
    /// hands when the tensor is dropped.
    pub fn wrap(ctx: &Context, shape: &[i64], data: &'a mut [f32]) -> Result<Tensor<'a>> {
        let numel = check_shape("Tensor::wrap", shape)?;
        if data.len() != numel {
            return Err(invalid(
                Status::ShapeMismatch,
                format!("Tensor::wrap: shape {shape:?} holds {numel} values, the slice {}", data.len()),
            ));
        }
        let mut raw = ptr::null_mut();
        ctx.call("Tensor::wrap", || unsafe {
            sys::lgd_tensor_wrap(
                ctx.as_raw(),
                sys::LGD_MEMORY_HOST,
                shape.len() as i32,
                shape.as_ptr(),
                data.as_mut_ptr(),
                None,
                ptr::null_mut(),
                &mut raw,
            )
        })?;
        Ok(Tensor::adopt(ctx, raw))
    }

    fn adopt(ctx: &Context, raw: *mut sys::lgd_tensor) -> Tensor<'a> {
        Tensor {
            raw: NonNull::new(raw).expect("liblgd returned LGD_OK without a tensor"),
            ctx: ctx.clone(),
            _data: PhantomData,
        }
    }

    /// The C handle (borrowed: valid while this `Tensor` is).
    pub fn as_raw(&self) -> *mut sys::lgd_tensor {
        self.raw.as_ptr()
    }

    /// The context the tensor belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Number of dimensions, 1 to 4.
    pub fn ndim(&self) -> usize {
        unsafe { sys::lgd_tensor_ndim(self.raw.as_ptr()) as usize }
    }

    /// The sizes of the dimensions.
    pub fn shape(&self) -> Vec<i64> {
        (0..self.ndim() as i32).map(|a| unsafe { sys::lgd_tensor_dim(self.raw.as_ptr(), a) }).collect()
    }

    /// Size of dimension `axis` (0 out of range).
    pub fn dim(&self, axis: usize) -> i64 {
        unsafe { sys::lgd_tensor_dim(self.raw.as_ptr(), axis.min(i32::MAX as usize) as i32) }
    }

    /// Total number of elements.
    pub fn numel(&self) -> usize {
        unsafe { sys::lgd_tensor_numel(self.raw.as_ptr()) as usize }
    }

    /// Copies `data` (exactly [`Tensor::numel`] values) into the tensor.
    pub fn upload(&mut self, data: &[f32]) -> Result<()> {
        self.ctx.call("Tensor::upload", || unsafe {
            sys::lgd_tensor_upload(self.raw.as_ptr(), data.as_ptr(), len_i64(data.len()))
        })
    }

    /// Copies the tensor into `out` (exactly [`Tensor::numel`] values).
    pub fn download(&self, out: &mut [f32]) -> Result<()> {
        self.ctx.call("Tensor::download", || unsafe {
            sys::lgd_tensor_download(self.raw.as_ptr(), out.as_mut_ptr(), len_i64(out.len()))
        })
    }

    /// The values, copied into a vector.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut v = vec![0.0f32; self.numel()];
        self.download(&mut v)?;
        Ok(v)
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: f32) -> Result<()> {
        self.ctx.call("Tensor::fill", || unsafe { sys::lgd_tensor_fill(self.raw.as_ptr(), value) })
    }

    /// Copies `src` (same context, same number of elements; the shapes may differ).
    pub fn copy_from(&mut self, src: &Tensor<'_>) -> Result<()> {
        self.ctx.call("Tensor::copy_from", || unsafe {
            sys::lgd_tensor_copy(self.raw.as_ptr(), src.raw.as_ptr())
        })
    }

    /// A new tensor of the same shape with a copy of the data.
    pub fn try_clone(&self) -> Result<Tensor<'static>> {
        let mut t = Tensor::new(&self.ctx, &self.shape())?;
        t.copy_from(self)?;
        Ok(t)
    }

    fn host_data(&self) -> Option<*mut f32> {
        if self.ctx.backend() != Backend::Cpu {
            return None; // device memory: use download / upload
        }
        let p = unsafe { sys::lgd_tensor_data(self.raw.as_ptr()) };
        (!p.is_null()).then_some(p)
    }

    /// The data in place, on the CPU backend (host memory); `None` on a device backend.
    pub fn as_slice(&self) -> Option<&[f32]> {
        // SAFETY: on the CPU backend the data are numel host floats, valid while the
        // tensor is; only &mut self methods (or the library, through a &mut Tensor) write.
        self.host_data().map(|p| unsafe { std::slice::from_raw_parts(p, self.numel()) })
    }

    /// The data in place, mutable, on the CPU backend; `None` on a device backend.
    pub fn as_mut_slice(&mut self) -> Option<&mut [f32]> {
        // SAFETY: as as_slice; &mut self excludes every other access meanwhile.
        self.host_data().map(|p| unsafe { std::slice::from_raw_parts_mut(p, self.numel()) })
    }
}

impl Drop for Tensor<'_> {
    fn drop(&mut self) {
        unsafe { sys::lgd_tensor_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Tensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor").field("shape", &self.shape()).finish()
    }
}

/// A tensor argument that may be absent (C NULL).
pub(crate) fn opt_raw(t: Option<&Tensor<'_>>) -> *const sys::lgd_tensor {
    t.map_or(ptr::null(), |t| t.as_raw())
}

pub(crate) fn opt_raw_mut(t: Option<&mut Tensor<'_>>) -> *mut sys::lgd_tensor {
    t.map_or(ptr::null_mut(), |t| t.as_raw())
}
