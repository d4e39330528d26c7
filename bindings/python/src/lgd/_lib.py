"""The ctypes declarations of liblgd's C API, and finding and loading the library.

Every function of the public headers (include/lgd/*.h) that the package uses is declared
here with its argtypes and restype; every option struct is declared with the layout of
the headers (tests/test_layout.py compares the offsets with a C compiler's). Enums are
32 bits wide in the C API and declared as ``c_int32``.

The library is looked for, in this order:

1. ``LGD_LIBRARY``: the path of the shared library (e.g. ``/opt/lgd/lib/liblgd.so.0``);
2. ``LGD_BUILD_DIR``: a meson build directory (``<dir>/lib/liblgd.so``);
3. pkg-config: ``pkg-config --variable=libdir lgd`` (``<libdir>/liblgd.so.0``);
4. the system loader (``ctypes.util.find_library("lgd")``).

On import the library's run-time version (``lgd_version()``) is checked: the major must
equal the one this package was written for and the minor must be at least its minor,
else ImportError.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_float, c_int32, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, List, Optional, Tuple

#: The liblgd version this package was written for: (major, minor). The loaded library
#: must have the same major and a minor at least this one.
REQUIRED_VERSION: Tuple[int, int] = (0, 3)

# ---- callback types (include/lgd/*.h); pointers are c_void_p so that Python gets ints ----

LOG_FN = CFUNCTYPE(None, c_void_p, c_int32, c_char_p)
RELEASE_FN = CFUNCTYPE(None, c_void_p)
DESTROY_FN = CFUNCTYPE(None, c_void_p)
DENOISE_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_float, c_void_p, c_int64, c_int64,
                       c_void_p)
VJP_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_float, c_void_p, c_int64, c_int64, c_void_p,
                   c_void_p)
LOSS_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_int64, c_int64, c_int64, c_void_p, c_void_p)
LOSS_DRAWS_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_int64, c_int64, c_int64, c_int64,
                          c_int64, c_void_p, c_void_p)
RADIUS_FN = CFUNCTYPE(c_float, c_void_p, c_float)
NETWORK_FORWARD_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_float, c_void_p, c_int64, c_int64,
                               c_void_p)
NETWORK_VJP_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_float, c_void_p, c_int64, c_int64,
                           c_void_p, c_void_p)


# ---- option structs (the layouts of the headers; struct_size first) ----

class ContextOptions(Structure):
    """lgd_context_options (lgd/context.h)."""
    _fields_ = [("struct_size", c_uint32), ("backend", c_int32), ("device_index", c_int32),
                ("num_threads", c_int32), ("log", LOG_FN), ("log_user", c_void_p),
                ("log_level", c_int32), ("cuda_module_path", c_char_p),
                ("check_callback_outputs", c_int32)]


class ModelCallbacks(Structure):
    """lgd_model_callbacks (lgd/model.h)."""
    _fields_ = [("struct_size", c_uint32), ("memory", c_int32), ("dim", c_int64),
                ("cond_dim", c_int64), ("denoise", DENOISE_FN), ("vjp", VJP_FN),
                ("destroy", DESTROY_FN), ("user", c_void_p)]


class LossCallbacks(Structure):
    """lgd_loss_callbacks (lgd/loss.h)."""
    _fields_ = [("struct_size", c_uint32), ("memory", c_int32), ("dim", c_int64),
                ("eval", LOSS_FN), ("destroy", DESTROY_FN), ("user", c_void_p),
                ("eval_draws", LOSS_DRAWS_FN)]


class GuidanceOptions(Structure):
    """lgd_guidance_options (lgd/guidance.h)."""
    _fields_ = [("struct_size", c_uint32), ("kind", c_int32), ("n_samples", c_int32),
                ("chunk_size", c_int32), ("sigma_data", c_float), ("radius", RADIUS_FN),
                ("radius_user", c_void_p), ("step_rule", c_int32), ("scale", c_float),
                ("sigma_min_active", c_float), ("sigma_max_active", c_float),
                ("seed", c_uint64)]


class GuidanceReport(Structure):
    """lgd_guidance_report (lgd/guidance.h)."""
    _fields_ = [("struct_size", c_uint32), ("sigma", c_float), ("mean_loss", c_float),
                ("mean_ess", c_float), ("min_ess", c_float), ("mean_grad_norm", c_float),
                ("mean_lambda", c_float), ("active", c_int32), ("rows", c_int64),
                ("row_loss", POINTER(c_float)), ("row_ess", POINTER(c_float)),
                ("row_grad_norm", POINTER(c_float)), ("row_lambda", POINTER(c_float))]


class SamplerOptions(Structure):
    """lgd_sampler_options (lgd/sampler.h)."""
    _fields_ = [("struct_size", c_uint32), ("kind", c_int32), ("steps", c_int32),
                ("schedule", c_int32), ("sigma_min", c_float), ("sigma_max", c_float),
                ("rho", c_float), ("eta", c_float), ("s_churn", c_float), ("s_tmin", c_float),
                ("s_tmax", c_float), ("s_noise", c_float), ("vp_timesteps", c_int32),
                ("vp_beta_start", c_float), ("vp_beta_end", c_float),
                ("sigmas", POINTER(c_float)), ("n_sigmas", c_int32)]


class NetworkCallbacks(Structure):
    """lgd_network_callbacks (lgd/network.h)."""
    _fields_ = [("struct_size", c_uint32), ("memory", c_int32), ("dim", c_int64),
                ("cond_dim", c_int64), ("forward", NETWORK_FORWARD_FN),
                ("vjp", NETWORK_VJP_FN), ("destroy", DESTROY_FN), ("user", c_void_p)]


class AdapterOptions(Structure):
    """lgd_adapter_options (lgd/network.h)."""
    _fields_ = [("struct_size", c_uint32), ("prediction", c_int32), ("time_input", c_int32),
                ("alphas_cumprod", POINTER(c_float)), ("num_timesteps", c_int32),
                ("sigma_data", c_float)]


class TrajectoryLayout(Structure):
    """lgd_trajectory_layout (lgd/trajectory.h)."""
    _fields_ = [("struct_size", c_uint32), ("frames", c_int64), ("frame_stride", c_int64),
                ("root_offset", c_int64), ("velocities", c_int32), ("velocity_scale", c_float)]


class ObstacleOptions(Structure):
    """lgd_obstacle_options (lgd/trajectory.h)."""
    _fields_ = [("struct_size", c_uint32), ("sharpness", c_float),
                ("obstacle_weight", c_float), ("goal_weight", c_float)]


class TrajectoryPriorOptions(Structure):
    """lgd_trajectory_prior_options (lgd/trajectory.h)."""
    _fields_ = [("struct_size", c_uint32), ("frames", c_int32), ("headings", c_int32),
                ("turns", c_int32), ("max_turn", c_float), ("speed", c_float),
                ("gp_std", c_float), ("gp_length", c_float), ("jitter", c_float)]


class OperatorOptions(Structure):
    """lgd_operator_options (lgd/operator.h, 0.5.0)."""
    _fields_ = [("struct_size", c_uint32), ("kind", c_int32), ("channels", c_int64),
                ("height", c_int64), ("width", c_int64), ("factor", c_int32),
                ("blur_sigma", c_float), ("blur_radius", c_int32),
                ("mask", POINTER(c_float))]


class NetworkLossOptions(Structure):
    """lgd_network_loss_options (lgd/network_loss.h, 0.5.0)."""
    _fields_ = [("struct_size", c_uint32), ("kind", c_int32), ("scale", c_float),
                ("input", c_int32), ("t", c_float), ("sigma", c_float),
                ("adapter", POINTER(AdapterOptions)), ("max_rows", c_int64)]


PROGRESS_FN = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int32, c_float, POINTER(GuidanceReport))

_P = c_void_p            # an opaque handle
_FP = POINTER(c_float)   # float *
_I64P = POINTER(c_int64)
_PP = POINTER(c_void_p)  # handle * (out)
_S = c_int32             # lgd_status

# name: (restype, argtypes, since (major, minor)); functions of a newer minor than
# REQUIRED_VERSION are optional: absent from an older library, they raise when used.
_FUNCTIONS = {
    # common.h
    "lgd_version": (c_uint32, [], (0, 1)),
    "lgd_version_string": (c_char_p, [], (0, 1)),
    "lgd_status_string": (c_char_p, [c_int32], (0, 1)),
    # context.h
    "lgd_context_options_init": (_S, [POINTER(ContextOptions), c_uint32], (0, 1)),
    "lgd_context_create": (_S, [POINTER(ContextOptions), _PP, POINTER(c_char_p)], (0, 1)),
    "lgd_context_destroy": (None, [_P], (0, 1)),
    "lgd_context_last_error": (c_char_p, [_P], (0, 1)),
    "lgd_context_clear_error": (None, [_P], (0, 1)),
    "lgd_context_set_callback_error": (None, [_P, c_char_p], (0, 3)),
    "lgd_context_backend": (c_int32, [_P], (0, 1)),
    "lgd_context_backend_name": (c_char_p, [_P], (0, 1)),
    "lgd_context_native_stream": (c_void_p, [_P], (0, 1)),
    "lgd_context_synchronize": (_S, [_P], (0, 1)),
    "lgd_context_memory_usage": (None, [_P, POINTER(c_size_t), POINTER(c_size_t)], (0, 1)),
    "lgd_context_reset_peak_memory": (None, [_P], (0, 1)),
    "lgd_context_cancel": (None, [_P], (0, 4)),
    "lgd_context_reset_cancel": (None, [_P], (0, 4)),
    "lgd_context_retain": (_P, [_P], (0, 3)),
    # tensor.h
    "lgd_tensor_create": (_S, [_P, c_int32, _I64P, _PP], (0, 1)),
    "lgd_tensor_create_2d": (_S, [_P, c_int64, c_int64, _PP], (0, 1)),
    "lgd_tensor_wrap": (_S, [_P, c_int32, c_int32, _I64P, c_void_p, RELEASE_FN, c_void_p, _PP],
                        (0, 3)),
    "lgd_tensor_retain": (_P, [_P], (0, 3)),
    "lgd_tensor_destroy": (None, [_P], (0, 1)),
    "lgd_tensor_context": (_P, [_P], (0, 3)),
    "lgd_tensor_ndim": (c_int32, [_P], (0, 1)),
    "lgd_tensor_dim": (c_int64, [_P, c_int32], (0, 1)),
    "lgd_tensor_numel": (c_int64, [_P], (0, 1)),
    "lgd_tensor_upload": (_S, [_P, c_void_p, c_int64], (0, 1)),
    "lgd_tensor_download": (_S, [_P, c_void_p, c_int64], (0, 1)),
    "lgd_tensor_copy": (_S, [_P, _P], (0, 1)),
    "lgd_tensor_fill": (_S, [_P, c_float], (0, 1)),
    "lgd_tensor_data": (c_void_p, [_P], (0, 1)),
    # model.h
    "lgd_model_callbacks_init": (_S, [POINTER(ModelCallbacks), c_uint32], (0, 1)),
    "lgd_model_create_callbacks": (_S, [_P, POINTER(ModelCallbacks), _PP], (0, 1)),
    "lgd_model_create_gmm": (_S, [_P, c_int64, c_int64, c_void_p, c_void_p, c_void_p, c_int32,
                                  _PP], (0, 1)),
    "lgd_model_destroy": (None, [_P], (0, 1)),
    "lgd_model_dim": (c_int64, [_P], (0, 1)),
    "lgd_model_cond_dim": (c_int64, [_P], (0, 1)),
    "lgd_model_denoise": (_S, [_P, _P, c_float, _P, _P], (0, 1)),
    "lgd_model_vjp": (_S, [_P, _P, c_float, _P, _P, _P], (0, 1)),
    "lgd_model_score": (_S, [_P, _P, c_float, _P, _P], (0, 1)),
    "lgd_model_log_density": (_S, [_P, _P, c_float, _P], (0, 1)),
    "lgd_model_has_exact_posterior": (c_int32, [_P], (0, 1)),
    "lgd_model_sample_posterior": (_S, [_P, _P, c_float, c_uint64, c_uint64, _P], (0, 1)),
    "lgd_model_retain": (_P, [_P], (0, 3)),
    "lgd_model_context": (_P, [_P], (0, 3)),
    # loss.h
    "lgd_loss_callbacks_init": (_S, [POINTER(LossCallbacks), c_uint32], (0, 1)),
    "lgd_loss_create_callbacks": (_S, [_P, POINTER(LossCallbacks), _PP], (0, 1)),
    "lgd_loss_create_squared_error": (_S, [_P, c_int64, c_void_p, c_int64, c_void_p, _PP],
                                      (0, 1)),
    "lgd_loss_create_linear": (_S, [_P, c_int64, c_int64, c_void_p, c_void_p, c_int64, c_float,
                                    _PP], (0, 1)),
    "lgd_loss_create_logistic": (_S, [_P, c_int64, c_void_p, c_float, _PP], (0, 1)),
    "lgd_loss_create_sum": (_S, [_P, c_int32, _PP, c_void_p, _PP], (0, 1)),
    "lgd_loss_destroy": (None, [_P], (0, 1)),
    "lgd_loss_dim": (c_int64, [_P], (0, 1)),
    "lgd_loss_eval": (_S, [_P, _P, _P, _P], (0, 1)),
    "lgd_loss_retain": (_P, [_P], (0, 3)),
    "lgd_loss_context": (_P, [_P], (0, 3)),
    # guidance.h
    "lgd_guidance_options_init": (_S, [POINTER(GuidanceOptions), c_uint32], (0, 1)),
    "lgd_guidance_report_init": (_S, [POINTER(GuidanceReport), c_uint32], (0, 3)),
    "lgd_guidance_create": (_S, [_P, _P, _P, POINTER(GuidanceOptions), _PP], (0, 1)),
    "lgd_guidance_destroy": (None, [_P], (0, 1)),
    "lgd_guidance_mc": (_S, [_P, _P, _P, c_int32, _PP], (0, 1)),
    "lgd_guidance_set_condition": (_S, [_P, _P], (0, 1)),
    "lgd_guidance_set_seed": (None, [_P, c_uint64], (0, 1)),
    "lgd_guidance_radius": (c_float, [_P, c_float], (0, 1)),
    "lgd_guidance_term": (_S, [_P, _P, c_float, c_int32, c_uint64, _P, _P,
                               POINTER(GuidanceReport)], (0, 1)),
    "lgd_guidance_denoise": (_S, [_P, _P, c_float, c_int32, c_uint64, _P,
                                  POINTER(GuidanceReport)], (0, 1)),
    "lgd_guidance_retain": (_P, [_P], (0, 3)),
    "lgd_guidance_context": (_P, [_P], (0, 3)),
    # schedule.h
    "lgd_vp_alphas_cumprod": (_S, [c_int32, c_int32, c_float, c_float, c_void_p], (0, 1)),
    "lgd_schedule_karras": (_S, [c_int32, c_float, c_float, c_float, c_void_p], (0, 1)),
    "lgd_schedule_vp": (_S, [c_int32, c_int32, c_float, c_float, c_int32, c_void_p], (0, 1)),
    # sampler.h
    "lgd_sampler_options_init": (_S, [POINTER(SamplerOptions), c_uint32], (0, 1)),
    "lgd_sampler_create": (_S, [_P, POINTER(SamplerOptions), _PP], (0, 1)),
    "lgd_sampler_destroy": (None, [_P], (0, 1)),
    "lgd_sampler_num_steps": (c_int32, [_P], (0, 1)),
    "lgd_sampler_sigmas": (_S, [_P, c_void_p, c_int64], (0, 1)),
    "lgd_sampler_init": (_S, [_P, _P, c_uint64, c_uint64], (0, 1)),
    "lgd_sampler_start": (_S, [_P, _P, c_int32, c_int32, c_uint64, c_uint64], (0, 3)),
    "lgd_sampler_step": (_S, [_P, _P, POINTER(GuidanceReport)], (0, 1)),
    "lgd_sampler_step_index": (c_int32, [_P], (0, 1)),
    "lgd_sampler_sigma": (c_float, [_P], (0, 1)),
    "lgd_sampler_done": (c_int32, [_P], (0, 1)),
    "lgd_sampler_run": (_S, [_P, _P, c_uint64, c_uint64, PROGRESS_FN, c_void_p], (0, 1)),
    "lgd_sampler_run_from": (_S, [_P, _P, c_int32, c_int32, c_uint64, c_uint64, PROGRESS_FN,
                                  c_void_p], (0, 3)),
    "lgd_sampler_retain": (_P, [_P], (0, 3)),
    "lgd_sampler_context": (_P, [_P], (0, 3)),
    # network.h
    "lgd_network_callbacks_init": (_S, [POINTER(NetworkCallbacks), c_uint32], (0, 1)),
    "lgd_adapter_options_init": (_S, [POINTER(AdapterOptions), c_uint32], (0, 1)),
    "lgd_model_create_network_callbacks": (_S, [_P, POINTER(NetworkCallbacks),
                                                POINTER(AdapterOptions), _PP], (0, 3)),
    "lgd_model_network_time": (_S, [_P, c_float, POINTER(c_float)], (0, 1)),
    "lgd_network_load": (_S, [_P, c_char_p, _PP], (0, 2)),
    "lgd_network_load_memory": (_S, [_P, c_void_p, c_size_t, _PP], (0, 2)),
    "lgd_network_destroy": (None, [_P], (0, 2)),
    "lgd_network_dim": (c_int64, [_P], (0, 2)),
    "lgd_network_out_dim": (c_int64, [_P], (0, 2)),
    "lgd_network_cond_dim": (c_int64, [_P], (0, 2)),
    "lgd_network_parameter_count": (c_int64, [_P], (0, 2)),
    "lgd_network_metadata": (c_char_p, [_P, c_char_p], (0, 2)),
    "lgd_network_adapter_options": (_S, [_P, POINTER(AdapterOptions)], (0, 2)),
    "lgd_network_forward": (_S, [_P, _P, c_float, _P, _P], (0, 2)),
    "lgd_network_vjp": (_S, [_P, _P, c_float, _P, _P, _P, _P], (0, 2)),
    "lgd_model_create_from_network": (_S, [_P, _P, POINTER(AdapterOptions), _PP], (0, 2)),
    "lgd_model_load": (_S, [_P, c_char_p, _PP], (0, 2)),
    # plugin.h (0.4.0)
    "lgd_loss_load_plugin": (_S, [_P, c_char_p, c_char_p, c_int64, c_char_p, _PP], (0, 4)),
    "lgd_model_load_plugin": (_S, [_P, c_char_p, c_char_p, c_char_p, _PP], (0, 4)),
    "lgd_network_retain": (_P, [_P], (0, 3)),
    "lgd_network_context": (_P, [_P], (0, 3)),
    # trajectory.h
    "lgd_trajectory_layout_init": (_S, [POINTER(TrajectoryLayout), c_uint32], (0, 1)),
    "lgd_loss_create_path": (_S, [_P, c_int64, POINTER(TrajectoryLayout), c_void_p, c_int64,
                                  _PP], (0, 1)),
    "lgd_obstacle_options_init": (_S, [POINTER(ObstacleOptions), c_uint32], (0, 1)),
    "lgd_loss_create_obstacle_avoidance": (_S, [_P, c_int64, POINTER(TrajectoryLayout),
                                                c_void_p, c_int64, c_void_p, c_int64,
                                                POINTER(ObstacleOptions), _PP], (0, 1)),
    "lgd_trajectory_prior_options_init": (_S, [POINTER(TrajectoryPriorOptions), c_uint32],
                                          (0, 1)),
    "lgd_model_create_trajectory_prior": (_S, [_P, POINTER(TrajectoryPriorOptions), _PP],
                                          (0, 1)),
    # operator.h (0.5.0)
    "lgd_operator_options_init": (_S, [POINTER(OperatorOptions), c_uint32], (0, 5)),
    "lgd_operator_dims": (_S, [_P, POINTER(OperatorOptions), _I64P, _I64P], (0, 5)),
    "lgd_operator_apply": (_S, [_P, POINTER(OperatorOptions), c_int32, _P, _P], (0, 5)),
    "lgd_loss_create_operator": (_S, [_P, POINTER(OperatorOptions), c_void_p, c_int64, c_float,
                                      _PP], (0, 5)),
    # network_loss.h (0.5.0)
    "lgd_network_loss_options_init": (_S, [POINTER(NetworkLossOptions), c_uint32], (0, 5)),
    "lgd_loss_create_network": (_S, [_P, _P, POINTER(NetworkLossOptions), _PP], (0, 5)),
    "lgd_loss_network_set_labels": (_S, [_P, c_void_p, c_int64], (0, 5)),
    "lgd_loss_network_set_targets": (_S, [_P, c_void_p, c_int64, c_int64], (0, 5)),
    "lgd_loss_network_eval_sigma": (_S, [_P, _P, c_float, _P, _P], (0, 5)),
    "lgd_model_create_classifier_guided": (_S, [_P, _P, _P, c_float, _PP], (0, 5)),
}


class _Missing:
    """Stands in for a function the loaded library does not export (a newer one)."""

    def __init__(self, name: str, since: Tuple[int, int], have: str):
        self.name, self.since, self.have = name, since, have

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(
            f"{self.name} needs liblgd {self.since[0]}.{self.since[1]} or newer; "
            f"the loaded library is {self.have}")


def _candidates() -> Tuple[List[str], List[str]]:
    """The paths to try, in order, and a description of each source tried (for the
    ImportError message)."""
    tried: List[str] = []
    env_lib = os.environ.get("LGD_LIBRARY")
    if env_lib:
        tried.append(f"LGD_LIBRARY={env_lib}")
        return [env_lib], tried
    build = os.environ.get("LGD_BUILD_DIR")
    if build:
        tried.append(f"LGD_BUILD_DIR={build} ({build}/lib/liblgd.so)")
        in_build = [os.path.join(build, "lib", "liblgd.so"),
                    os.path.join(build, "lib", "liblgd.so.0")]
        return [p for p in in_build if os.path.exists(p)] or in_build[:1], tried
    paths: List[str] = []
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "lgd"], check=True,
                                capture_output=True, text=True, timeout=30).stdout.strip()
        tried.append(f"pkg-config lgd (libdir {libdir or '?'})")
        if libdir:
            for name in ("liblgd.so.0", "liblgd.so", "liblgd.dylib"):
                p = os.path.join(libdir, name)
                if os.path.exists(p):
                    paths.append(p)
                    break
    except (OSError, subprocess.SubprocessError):
        tried.append("pkg-config lgd (not found)")
    found = ctypes.util.find_library("lgd")
    tried.append(f"the system loader (find_library('lgd') = {found})")
    if found:
        paths.append(found)
    return paths, tried


def _load() -> Tuple[ctypes.CDLL, str]:
    paths, tried = _candidates()
    errors = []
    for p in paths:
        try:
            return ctypes.CDLL(p), p
        except OSError as e:
            errors.append(f"{p}: {e}")
    raise ImportError(
        "lgd: cannot load liblgd. Tried " + "; ".join(tried) +
        (". Errors: " + "; ".join(errors) if errors else "") +
        ". Set LGD_LIBRARY to the path of liblgd.so, or LGD_BUILD_DIR to a meson build "
        "directory, or install liblgd where pkg-config or the loader finds it.")


def _declare(cdll: ctypes.CDLL, version: Tuple[int, int], have: str) -> None:
    for name, (restype, argtypes, since) in _FUNCTIONS.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            if since <= REQUIRED_VERSION:
                raise ImportError(f"lgd: the loaded liblgd ({have}) lacks {name}, which "
                                  f"liblgd {since[0]}.{since[1]} has") from None
            globals()[name] = _Missing(name, since, have)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
        globals()[name] = fn


def check_version(number: int, required: Tuple[int, int] = REQUIRED_VERSION) -> Optional[str]:
    """The reason a library of version number (major * 10000 + minor * 100 + patch, as
    lgd_version() gives it) cannot be used by this package, or None when it can."""
    major, minor, patch = number // 10000, (number // 100) % 100, number % 100
    if major != required[0] or minor < required[1]:
        return (f"liblgd {major}.{minor}.{patch} is loaded, but this package needs "
                f"{required[0]}.x with x >= {required[1]} (the same major version and a "
                f"minor version at least {required[1]})")
    return None


LIBRARY, LIBRARY_PATH = _load()
try:
    _vfn = LIBRARY.lgd_version
except AttributeError:
    raise ImportError(f"lgd: {LIBRARY_PATH} is not liblgd (no lgd_version)") from None
_vfn.restype, _vfn.argtypes = c_uint32, []
VERSION_NUMBER: int = int(_vfn())
VERSION: Tuple[int, int, int] = (VERSION_NUMBER // 10000, (VERSION_NUMBER // 100) % 100,
                                 VERSION_NUMBER % 100)
_problem = check_version(VERSION_NUMBER)
if _problem:
    raise ImportError(f"lgd: {_problem} ({LIBRARY_PATH}). Point LGD_LIBRARY at a matching "
                      "library.")
_declare(LIBRARY, VERSION[:2], "%d.%d.%d" % VERSION)


def has(name: str) -> bool:
    """Whether the loaded library exports the function `name` (a newer one may be
    absent from an older library)."""
    return not isinstance(globals().get(name), _Missing)


def default_cuda_module() -> Optional[bytes]:
    """The CUDA module of the build directory the library came from (LGD_BUILD_DIR), so
    that a context on a build tree finds its module; None otherwise (the library's own
    search)."""
    build = os.environ.get("LGD_BUILD_DIR")
    if build and not os.environ.get("LGD_LIBRARY"):
        p = os.path.join(build, "cuda", "liblgd-cuda.so")
        if os.path.exists(p):
            return os.fsencode(p)
    return None


def __getattr__(name: str) -> Any:
    """The C functions are module attributes set by _declare() (so a type checker sees
    any lgd_* name as declared); anything else is missing."""
    raise AttributeError(f"module 'lgd._lib' has no attribute {name!r}")


# Statuses (lgd/common.h)
OK = 0
MEMORY_HOST = 0
MEMORY_DEVICE = 1
