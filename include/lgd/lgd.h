/*
 * lgd/lgd.h - liblgd: loss-guided diffusion, the whole public API.
 *
 * Sample from p0(x0) exp(-l(x0)) / Z with a pretrained diffusion denoiser and a
 * differentiable loss of your own, without retraining (Song et al., "Loss-Guided
 * Diffusion Models for Plug-and-Play Controllable Generation", ICML 2023).
 *
 *   lgd_context  - backend (CPU or CUDA), logging, last error     <lgd/context.h>
 *   lgd_tensor   - float32 data on the backend                    <lgd/tensor.h>
 *   lgd_model    - denoiser D(x, sigma) and its VJP               <lgd/model.h>
 *   lgd_loss     - l(x0) with its gradient                        <lgd/loss.h>
 *   lgd_guidance - DPS, LGD-MC, exact estimators, step rules      <lgd/guidance.h>
 *   lgd_sampler  - Euler/DDIM, Heun, DPM-Solver++(2M), schedules  <lgd/sampler.h>
 *   lgd_network  - networks from weights files or callbacks        <lgd/network.h>
 *   trajectories - the paper's trajectory prior and losses         <lgd/trajectory.h>
 *
 * Conventions: every fallible call returns lgd_status (0 = LGD_OK) and leaves a
 * message in lgd_context_last_error(); handles are opaque, destroy(NULL) is a
 * no-op; option structs begin with struct_size and only grow at the end.
 *
 * Handles and references (since 0.3.0). Every handle (context, tensor, model, loss,
 * guidance, sampler, network) is reference counted: create gives the caller one
 * reference, lgd_X_retain(x) takes another and returns x, and lgd_X_destroy(x) drops
 * one; the last drop frees the object. Objects hold references to what they use (an
 * object to its context, a guidance to its model and loss, a sampler to its guidance),
 * so they may be destroyed in any order. lgd_X_context(x) returns the context an object
 * was made from, borrowed (valid while x is), to read lgd_context_last_error().
 *
 * Thread contract (since 0.3.0):
 *  1. Different contexts, and the objects made from each, are fully independent:
 *     any number of threads may each use their own context at the same time. liblgd
 *     has no global mutable state.
 *  2. lgd_version(), lgd_version_string(), lgd_status_string(), the *_init
 *     functions of option structs and lgd_context_create() may be called from any
 *     thread at any time.
 *  3. Reference counts are atomic. lgd_X_retain(), lgd_X_destroy() and lgd_X_context()
 *     of any handle may be called from any thread at any time, even while another
 *     thread uses other objects of the same context (a finalizer thread of a
 *     garbage-collected language releasing handles): the memory the last release frees
 *     does not disturb the thread using the context (the context's accounting is
 *     atomic; on a device backend, whose allocator is not thread-safe, the freed blocks
 *     return to it at that thread's next allocation or when the context is freed).
 *     Conditions: the releasing thread drops a reference it owns
 *     (an object in use by a call on another thread must be kept alive by that
 *     thread's own reference), and the release runs callbacks on the releasing thread
 *     (the destroy or release callback of an object made from callbacks, a wrapped
 *     tensor's release), which must therefore be thread-safe themselves.
 *  4. Everything else on one context - every call that takes the context or an
 *     object made from it, including the other getters and lgd_context_last_error() -
 *     runs on one thread at a time. A context may move between threads (the caller synchronizes
 *     the hand-over, e.g. with a mutex); lgd_context_last_error() reports the last
 *     failure on the context, whichever thread made it.
 * Pointers that objects return (lgd_tensor_data(), names, metadata, last errors) are
 * borrowed: valid while the caller holds a reference to the object and, for messages,
 * until the next failing call on the context.
 */
#ifndef LGD_LGD_H
#define LGD_LGD_H

#include "common.h"
#include "context.h"
#include "tensor.h"
#include "model.h"
#include "loss.h"
#include "guidance.h"
#include "schedule.h"
#include "sampler.h"
#include "network.h"
#include "trajectory.h"

#endif
