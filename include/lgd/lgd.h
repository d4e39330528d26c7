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
 *   plugins      - losses and models from shared objects (0.4.0)   <lgd/plugin.h>
 *   operators    - matrix-free image operators and loss (0.5.0)    <lgd/operator.h>
 *
 * Conventions: every fallible call returns lgd_status (0 = LGD_OK) and leaves a
 * message in lgd_context_last_error(); handles are opaque, destroy(NULL) is a
 * no-op; option structs begin with struct_size and only grow at the end.
 *
 * Each function's comment gives its parameters' rules, the statuses it returns and the
 * version it appeared in ("Since"); docs/api.md indexes the functions by version. These
 * rules hold for every function and are not repeated in each comment:
 *  - a NULL context or handle as the first argument gives LGD_ERR_INVALID_ARGUMENT
 *    without a message (no context to hold one); a getter gives the value its comment
 *    names (0, NULL or "" unless stated) for a NULL handle and never fails;
 *  - every tensor, model, loss or network passed to an object must belong to that
 *    object's context; one of another context, or a required one that is NULL, is
 *    LGD_ERR_INVALID_ARGUMENT;
 *  - a create function sets *out to NULL on failure (when out is not NULL) and takes
 *    nothing over: a destroy callback is not called and the caller keeps `user`;
 *  - input arrays are copied during the call unless the comment says otherwise;
 *  - an option-struct pointer may be NULL for the defaults. Its struct_size must be at
 *    least the size of the struct's first published layout (an older caller's struct
 *    is read as far as it goes, the rest defaulted), and a struct larger than this
 *    library's is accepted only when the bytes it does not know are all zero:
 *    LGD_ERR_INVALID_ARGUMENT otherwise (since 0.3.0; see the *_init functions);
 *  - a call that runs a model, a loss or a network can also return what running them
 *    returns: LGD_ERR_CALLBACK (a callback returned non-zero, or left an output
 *    unwritten under check_callback_outputs), LGD_ERR_NON_FINITE, LGD_ERR_OUT_OF_MEMORY
 *    (scratch memory, grown on a larger batch) and LGD_ERR_INTERNAL on a backend failure
 *    (a failed copy or kernel on a device backend); their comments say "running the
 *    model" (or loss, network) for this list.
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
#include "network_loss.h"
#include "trajectory.h"
#include "plugin.h"
#include "operator.h"

#endif
